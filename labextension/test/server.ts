/**
 * A real HTTP server on the loopback for the data-layer tests.
 *
 * It answers what a route handler tells it, records every request it gets
 * (method, path, headers, body), and can hold a request open until the test
 * releases it, so "the API is slow" and "the API never answers" are states the
 * test controls instead of timings it hopes for.
 */

import * as http from 'http';
import { AddressInfo } from 'net';

import { ServerConnection } from '@jupyterlab/services';

export interface IRecorded {
  method: string;
  path: string;
  headers: http.IncomingHttpHeaders;
  body: string;
}

export interface IReply {
  status?: number;
  json?: unknown;
  text?: string;
  contentType?: string;
  /** Answer only once this promise resolves. */
  after?: Promise<void>;
}

export type Route = (request: IRecorded) => IReply;

/** What Jupyter answers for a path no handler serves: an HTML page. */
const notFound: Route = () => ({
  status: 404,
  text: '<html><body>404: Not Found</body></html>',
  contentType: 'text/html'
});

export class TestServer {
  readonly requests: IRecorded[] = [];
  route: Route = notFound;

  /** Forget the requests and answer everything with Jupyter's 404 page again. */
  reset(): void {
    this.requests.length = 0;
    this.route = notFound;
  }

  async start(): Promise<void> {
    this._server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', chunk => chunks.push(chunk));
      req.on('end', () => {
        const recorded: IRecorded = {
          method: req.method ?? '',
          path: req.url ?? '',
          headers: req.headers,
          body: Buffer.concat(chunks).toString('utf8')
        };
        this.requests.push(recorded);
        const reply = this.route(recorded);
        const send = () => {
          const body =
            reply.json !== undefined
              ? JSON.stringify(reply.json)
              : (reply.text ?? '');
          res.writeHead(reply.status ?? 200, {
            'Content-Type': reply.contentType ?? 'application/json'
          });
          res.end(body);
        };
        if (reply.after) {
          void reply.after.then(send);
        } else {
          send();
        }
      });
    });
    await new Promise<void>(resolve =>
      this._server!.listen(0, '127.0.0.1', resolve)
    );
  }

  get port(): number {
    return (this._server!.address() as AddressInfo).port;
  }

  /** Settings like JupyterLab's, with the page's base URL under `/lab-base/`. */
  settings(token = ''): ServerConnection.ISettings {
    return ServerConnection.makeSettings({
      baseUrl: `http://127.0.0.1:${this.port}/lab-base/`,
      token
    });
  }

  /** Requests to the management API, as `METHOD path-below-tfserve/api` (no cache buster). */
  calls(): string[] {
    return this.requests.map(
      r =>
        `${r.method} ${r.path.replace('/lab-base/tfserve/api/', '').split('?')[0]}`
    );
  }

  async stop(): Promise<void> {
    if (this._server) {
      this._server.closeAllConnections();
      await new Promise<void>(resolve => this._server!.close(() => resolve()));
      this._server = null;
    }
  }

  private _server: http.Server | null = null;
}

/** A promise the test resolves when it wants a held request answered. */
export function gate(): { promise: Promise<void>; open: () => void } {
  let open: () => void = () => undefined;
  const promise = new Promise<void>(resolve => (open = resolve));
  return { promise, open };
}

/** Wait until `predicate` holds, checking on every macrotask, up to `timeoutMs`. */
export async function waitFor(
  predicate: () => boolean,
  timeoutMs = 5000
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) {
      throw new Error('condition not met in time');
    }
    await new Promise(resolve => setTimeout(resolve, 5));
  }
}
