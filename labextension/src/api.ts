/**
 * The management API client: every request of the panel goes through here.
 *
 * Requests use `ServerConnection.makeRequest`, so JupyterLab adds the token
 * and the XSRF header exactly as it does for its own calls. Each request has a
 * deadline: a server that does not answer in time is an error the panel can
 * show, never a spinner that turns forever.
 *
 * Failures come back as one error type, `ApiError`, whose `kind` tells the
 * panel what to say:
 *
 * - `missing-extension`: Jupyter answered, but nothing is mounted under
 *   `tfserve/api/` (the server extension is not installed or not enabled);
 * - `http`: the extension answered with an error (`{"error": message}`);
 * - `timeout`: no answer within the deadline;
 * - `network`: no answer at all (Jupyter stopped, connection lost);
 * - `bad-response`: an answer the panel cannot read.
 */

import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

import {
  BadResponse,
  IModelInfo,
  IModelStats,
  IServerInfo,
  parseBatching,
  parseInfo,
  parseModels
} from './model';
import { IModelCounters, parseMetrics } from './rates';

export type ApiErrorKind =
  'missing-extension' | 'http' | 'timeout' | 'network' | 'bad-response';

/** The command that turns the server extension on; shown to the user with the error. */
export const ENABLE_COMMAND = 'jupyter server extension enable jupyter_tfserve';

/** The command that installs the server extension, for when enabling it is not enough. */
export const INSTALL_COMMAND = 'pip install jupyter-tfserve';

export class ApiError extends Error {
  constructor(
    readonly kind: ApiErrorKind,
    message: string,
    readonly status: number = 0
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

/** A version policy for a load, as TF Serving's `ServableVersionPolicy` in JSON. */
export type VersionPolicy =
  | { latest: { num_versions: number } }
  | { all: Record<string, never> }
  | { specific: { versions: number[] } };

/** Without `base_path` the server loads from `{models_root}/{name}`. */
export interface ILoadRequest {
  name: string;
  base_path?: string;
  policy?: VersionPolicy;
}

export interface IClientOptions {
  serverSettings?: ServerConnection.ISettings;
  /** Deadline of one request, in milliseconds. */
  timeoutMs?: number;
}

export const DEFAULT_TIMEOUT_MS = 10000;

export class TfServeClient {
  constructor(options: IClientOptions = {}) {
    this.serverSettings =
      options.serverSettings ?? ServerConnection.makeSettings();
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  }

  readonly serverSettings: ServerConnection.ISettings;
  timeoutMs: number;

  /** `{base_url}tfserve/api/{path}`. */
  url(path: string): string {
    return URLExt.join(this.serverSettings.baseUrl, 'tfserve', 'api', path);
  }

  listModels(): Promise<IModelInfo[]> {
    return this.read('models', parseModels);
  }

  info(): Promise<IServerInfo> {
    return this.read('info', parseInfo);
  }

  /** Request counters of every model (rates come from two readings: see `RateWindow`). */
  metrics(): Promise<{ [model: string]: IModelCounters }> {
    return this.read('metrics', parseMetrics);
  }

  batching(
    name: string
  ): Promise<Pick<IModelStats, 'avgBatchSize' | 'queueDepth'>> {
    return this.read(
      `models/${encodeURIComponent(name)}/batching`,
      parseBatching
    );
  }

  async load(request: ILoadRequest): Promise<void> {
    await this.request('POST', 'models', request);
  }

  async unload(name: string): Promise<void> {
    await this.request('DELETE', `models/${encodeURIComponent(name)}`);
  }

  async setLabel(name: string, label: string, version: number): Promise<void> {
    await this.request('PUT', this.labelPath(name, label), { version });
  }

  async removeLabel(name: string, label: string): Promise<void> {
    await this.request('DELETE', this.labelPath(name, label));
  }

  /** Serve the previous version again; resolves to the version now loading, when the server says. */
  async rollback(name: string): Promise<number | undefined> {
    const body = await this.request(
      'POST',
      `models/${encodeURIComponent(name)}/rollback`,
      {}
    );
    const version = (body as { version?: unknown }).version;
    return typeof version === 'number' ? version : undefined;
  }

  /** Re-read the server's model config file; resolves to the models now configured. */
  async reloadConfig(): Promise<string[]> {
    const body = await this.request('POST', 'config/reload', {});
    const models = (body as { models?: unknown }).models;
    return Array.isArray(models)
      ? models.filter((m): m is string => typeof m === 'string')
      : [];
  }

  /** GET and parse; an answer the parser refuses is a `bad-response` error like any other. */
  private async read<T>(path: string, parse: (body: unknown) => T): Promise<T> {
    const body = await this.request('GET', path);
    try {
      return parse(body);
    } catch (error) {
      if (error instanceof BadResponse) {
        throw new ApiError('bad-response', error.message);
      }
      throw error;
    }
  }

  private labelPath(name: string, label: string): string {
    return `models/${encodeURIComponent(name)}/labels/${encodeURIComponent(label)}`;
  }

  /** One request with a deadline; the JSON body of a 2xx answer, or an `ApiError`. */
  async request(
    method: string,
    path: string,
    body?: unknown
  ): Promise<unknown> {
    const controller = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort();
    }, this.timeoutMs);
    const init: RequestInit = { method, signal: controller.signal };
    if (body !== undefined) {
      init.body = JSON.stringify(body);
      init.headers = { 'Content-Type': 'application/json' };
    }
    try {
      let response: Response;
      try {
        response = await ServerConnection.makeRequest(
          this.url(path),
          init,
          this.serverSettings
        );
      } catch (error) {
        if (timedOut) {
          throw this.timeoutError(method, path);
        }
        throw new ApiError(
          'network',
          `The Jupyter server did not answer ${method} ${path}: ${(error as Error).message}`
        );
      }
      let text: string;
      try {
        text = await response.text();
      } catch {
        throw timedOut
          ? this.timeoutError(method, path)
          : new ApiError(
              'network',
              `Reading the answer to ${method} ${path} failed`
            );
      }
      return parseBody(method, path, response.status, text);
    } finally {
      clearTimeout(timer);
    }
  }

  private timeoutError(method: string, path: string): ApiError {
    const seconds = Math.round(this.timeoutMs / 100) / 10;
    return new ApiError(
      'timeout',
      `The TF Serving server extension did not answer ${method} ${path} within ${seconds} s.`
    );
  }
}

/**
 * Our API answers JSON everywhere, errors as `{"error": message}`. Jupyter's own
 * errors (403 from its auth or XSRF check) are `{"message": ...}`, and a path no
 * handler serves gets Jupyter's HTML "not found" page.
 */
function parseBody(
  method: string,
  path: string,
  status: number,
  text: string
): unknown {
  let json: unknown = undefined;
  try {
    json = text ? JSON.parse(text) : {};
  } catch {
    json = undefined;
  }
  const field = (name: string): string | undefined => {
    const value =
      typeof json === 'object' && json !== null
        ? (json as any)[name]
        : undefined;
    return typeof value === 'string' && value ? value : undefined;
  };
  if (status >= 200 && status < 300) {
    if (json === undefined) {
      throw new ApiError(
        'bad-response',
        new BadResponse(`${method} ${path} is not JSON`).message
      );
    }
    return json;
  }
  const apiError = field('error');
  if (status === 404 && apiError === undefined) {
    throw new ApiError(
      'missing-extension',
      'The TF Serving server extension is not running in this Jupyter server. ' +
        `Enable it with \`${ENABLE_COMMAND}\` and restart Jupyter.`,
      status
    );
  }
  const jupyterError = field('message');
  throw new ApiError(
    'http',
    apiError ??
      (jupyterError
        ? `Jupyter refused ${method} ${path} (HTTP ${status}): ${jupyterError}`
        : `${method} ${path} failed with HTTP ${status}`),
    status
  );
}
