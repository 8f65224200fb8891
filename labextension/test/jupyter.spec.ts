/**
 * Against a real Jupyter server whose TF Serving extension is turned off: the
 * panel's client must recognize Jupyter's own "not found" page and say that
 * the extension is missing, with the command that turns it on.
 */
import { ServerConnection } from '@jupyterlab/services';
import { JupyterServer } from '@jupyterlab/testing';

import { ApiError, ENABLE_COMMAND, TfServeClient } from '../src/api';

describe('a Jupyter server without the extension', () => {
  const server = new JupyterServer();

  beforeAll(async () => {
    await server.start({
      // The tests run as root on CI.
      configData: {
        ServerApp: {
          allow_root: true,
          jpserver_extensions: { jupyter_tfserve: false }
        }
      }
    });
  }, 60000);

  afterAll(async () => {
    await server.shutdown();
  });

  it('is reported as a missing extension, with the fix', async () => {
    const settings = ServerConnection.makeSettings();
    // Jupyter itself answers (so the 404 below is about our routes alone).
    const status = await ServerConnection.makeRequest(
      `${settings.baseUrl}api/status`,
      {},
      settings
    );
    expect(status.status).toBe(200);

    const client = new TfServeClient({ serverSettings: settings });
    let error: unknown;
    try {
      await client.listModels();
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ApiError);
    expect((error as ApiError).kind).toBe('missing-extension');
    expect((error as ApiError).status).toBe(404);
    expect((error as ApiError).message).toContain(ENABLE_COMMAND);
  });
});
