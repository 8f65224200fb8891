import { ApiError, ENABLE_COMMAND, TfServeClient } from '../src/api';
import * as fixtures from './fixtures';
import { gate, TestServer } from './server';

describe('TfServeClient', () => {
  const server = new TestServer();

  beforeEach(async () => {
    await server.start();
    server.reset();
  });

  afterEach(async () => {
    await server.stop();
    document.cookie = '_xsrf=; expires=Thu, 01 Jan 1970 00:00:00 GMT';
  });

  const client = (timeoutMs = 5000, token = 'jupyter-token') =>
    new TfServeClient({ serverSettings: server.settings(token), timeoutMs });

  const rejection = async (promise: Promise<unknown>): Promise<ApiError> => {
    try {
      await promise;
    } catch (error) {
      expect(error).toBeInstanceOf(ApiError);
      return error as ApiError;
    }
    throw new Error('the request did not fail');
  };

  it('lists models under {base_url}tfserve/api with Jupyter auth', async () => {
    server.route = () => ({ json: fixtures.modelList });
    const models = await client().listModels();
    expect(models).toHaveLength(3);
    expect(server.requests[0].path).toMatch(
      /^\/lab-base\/tfserve\/api\/models(\?|$)/
    );
    expect(server.requests[0].headers.authorization).toBe(
      'token jupyter-token'
    );
  });

  it('sends the XSRF cookie as a header, as JupyterLab does', async () => {
    document.cookie = '_xsrf=xsrf-value';
    server.route = () => ({ json: {} });
    await client(5000, '').reloadConfig();
    expect(server.requests[0].headers['x-xsrftoken']).toBe('xsrf-value');
  });

  it('sends each action with its method, path and body', async () => {
    server.route = () => ({ json: {} });
    const c = client();
    await c.load({
      name: 'm',
      base_path: '/models/m',
      policy: { latest: { num_versions: 2 } }
    });
    await c.unload('m');
    await c.setLabel('m', 'canary', 3);
    await c.removeLabel('m', 'canary');
    await c.rollback('m');
    await c.reloadConfig();
    await c.batching('my model');
    await c.metrics();
    expect(server.calls()).toEqual([
      'POST models',
      'DELETE models/m',
      'PUT models/m/labels/canary',
      'DELETE models/m/labels/canary',
      'POST models/m/rollback',
      'POST config/reload',
      'GET models/my%20model/batching',
      'GET metrics'
    ]);
    expect(JSON.parse(server.requests[0].body)).toEqual({
      name: 'm',
      base_path: '/models/m',
      policy: { latest: { num_versions: 2 } }
    });
    expect(JSON.parse(server.requests[2].body)).toEqual({ version: 3 });
    expect(server.requests[0].headers['content-type']).toBe('application/json');
  });

  it('says the server extension is missing when Jupyter has no such route', async () => {
    // Jupyter's own 404 is an HTML page, not the API's JSON error.
    const error = await rejection(client().listModels());
    expect(error.kind).toBe('missing-extension');
    expect(error.message).toContain(ENABLE_COMMAND);
  });

  it("passes on the API's own error message", async () => {
    server.route = () => ({
      status: 404,
      json: { error: 'Servable not found for request: Latest(nope)' }
    });
    const error = await rejection(client().unload('nope'));
    expect(error.kind).toBe('http');
    expect(error.status).toBe(404);
    expect(error.message).toBe('Servable not found for request: Latest(nope)');
  });

  it("passes on Jupyter's own refusal", async () => {
    server.route = () => ({
      status: 403,
      json: { message: "'_xsrf' argument missing from POST", reason: null }
    });
    const error = await rejection(client().reloadConfig());
    expect(error.kind).toBe('http');
    expect(error.message).toBe(
      "Jupyter refused POST config/reload (HTTP 403): '_xsrf' argument missing from POST"
    );
  });

  it('reports a failure without a JSON body by its status', async () => {
    server.route = () => ({
      status: 502,
      text: 'Bad Gateway',
      contentType: 'text/plain'
    });
    const error = await rejection(client().listModels());
    expect(error.kind).toBe('http');
    expect(error.message).toBe('GET models failed with HTTP 502');
  });

  it('gives up on a server that does not answer, with a timeout error', async () => {
    const held = gate();
    server.route = () => ({ json: fixtures.modelList, after: held.promise });
    const error = await rejection(client(100).listModels());
    held.open();
    expect(error.kind).toBe('timeout');
    expect(error.message).toContain('within 0.1 s');
  });

  it('reports a server that is gone as a network error', async () => {
    const c = client();
    await server.stop();
    const error = await rejection(c.listModels());
    expect(error.kind).toBe('network');
    await server.start();
  });

  it('reports a success that is not JSON as a bad response', async () => {
    server.route = () => ({
      text: '<html>login</html>',
      contentType: 'text/html'
    });
    const error = await rejection(client().listModels());
    expect(error.kind).toBe('bad-response');
  });
});
