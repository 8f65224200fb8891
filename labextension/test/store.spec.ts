import { TfServeClient } from '../src/api';
import { IMessage, Notifier, TfServeStore } from '../src/store';
import * as fixtures from './fixtures';
import { gate, IRecorded, IReply, TestServer, waitFor } from './server';

/** Requests half_plus_two has served: each reading of the metrics finds 100 more. */
let served = 0;

/** The management API of a healthy server, over the fixtures. */
function healthy(request: IRecorded): IReply {
  const path = request.path.split('?')[0].replace('/lab-base/tfserve/api/', '');
  if (path === 'models') {
    return { json: request.method === 'GET' ? fixtures.modelList : {} };
  }
  if (path === 'info') {
    return { json: fixtures.info };
  }
  if (path === 'metrics') {
    served += 100;
    return { json: fixtures.metrics(served) };
  }
  if (path.endsWith('/batching')) {
    return { json: fixtures.batching };
  }
  return { json: {} };
}

describe('TfServeStore', () => {
  const server = new TestServer();
  let store: TfServeStore | null = null;
  let visible = true;

  /** What the notifier was told, in order: `success: ...` or `error: ...`. */
  let notes: string[] = [];
  const notifier: Notifier = (outcome: IMessage) =>
    notes.push(`${outcome.kind}: ${outcome.text}`);

  const makeStore = (timeoutMs = 5000, settleTimeoutMs = 5000) => {
    store = new TfServeStore({
      client: new TfServeClient({
        serverSettings: server.settings('t'),
        timeoutMs
      }),
      pollInterval: 60000, // ticks come from the tests, not the clock
      slowAfterMs: 50,
      isVisible: () => visible,
      notifier,
      settleIntervalMs: 10,
      settleTimeoutMs
    });
    return store;
  };

  beforeEach(async () => {
    await server.start();
    server.reset();
    visible = true;
    notes = [];
  });

  afterEach(async () => {
    store?.dispose();
    store = null;
    await server.stop();
  });

  it('loads models, server info and batching numbers on start', async () => {
    server.route = healthy;
    const s = makeStore();
    expect(s.state.phase).toBe('loading');
    await s.start();
    await waitFor(() => s.state.phase === 'ready');
    expect(s.state.models.map(m => m.name)).toEqual([
      'big_model',
      'broken',
      'half_plus_two'
    ]);
    expect(s.state.info?.restPort).toBe(8501);
    // Numbers are asked for the serving model only.
    expect(Object.keys(s.state.stats)).toEqual(['half_plus_two']);
    expect(s.state.stats.half_plus_two).toEqual({
      avgBatchSize: 4,
      queueDepth: 3
    });
    expect(server.calls()).toContain('GET models/half_plus_two/batching');
    expect(server.calls()).not.toContain('GET models/broken/batching');
  });

  it('computes request rates and latencies from successive readings', async () => {
    server.route = healthy;
    const s = makeStore();
    await s.start();
    await waitFor(() => s.state.phase === 'ready');
    const first = s.state.updatedAt!;
    await new Promise(resolve => setTimeout(resolve, 20)); // two readings at distinct times
    await s.refresh();
    await waitFor(() => s.state.updatedAt !== first);
    const stats = s.state.stats.half_plus_two;
    expect(stats.requestsPerSecond).toBeGreaterThan(0);
    const [lower, upper] = [
      fixtures.latencyBounds[9] / 1000,
      fixtures.latencyBounds[10] / 1000
    ];
    expect(stats.p50Ms).toBeGreaterThan(lower);
    expect(stats.p99Ms).toBeLessThanOrEqual(upper);
  });

  it('shows no batch numbers when the server does not batch, and asks for none', async () => {
    server.route = request =>
      request.path.includes('/info')
        ? { json: { ...fixtures.info, batching: false } }
        : healthy(request);
    const s = makeStore();
    await s.start();
    await waitFor(() => s.state.phase === 'ready');
    expect(s.state.stats.half_plus_two).toEqual({});
    expect(server.calls().filter(call => call.endsWith('/batching'))).toEqual(
      []
    );
  });

  it('still lists models when the numbers cannot be read', async () => {
    server.route = request =>
      request.path.includes('/metrics') || request.path.includes('/info')
        ? {
            status: 404,
            json: { error: 'Not found: GET /tfserve/api/metrics' }
          }
        : healthy(request);
    const s = makeStore();
    await s.start();
    await waitFor(() => s.state.phase === 'ready');
    expect(s.state.models).toHaveLength(3);
    expect(s.state.info).toBeNull();
  });

  it('asks nothing while hidden, and refreshes when shown', async () => {
    server.route = healthy;
    visible = false;
    const s = makeStore();
    await s.start();
    await waitFor(() => s.poll.state.phase === 'standby');
    expect(server.requests).toHaveLength(0);
    expect(s.state.phase).toBe('loading');
    visible = true;
    await s.refresh();
    await waitFor(() => s.state.phase === 'ready');
    expect(server.calls()).toContain('GET models');
  });

  it('says it is waiting when the API is slow, then shows the answer', async () => {
    const held = gate();
    server.route = request => ({ ...healthy(request), after: held.promise });
    const s = makeStore();
    await s.start();
    await waitFor(() => s.state.slow);
    expect(s.state.phase).toBe('loading');
    held.open();
    await waitFor(() => s.state.phase === 'ready');
    expect(s.state.slow).toBe(false);
  });

  it('turns an API that never answers into a timeout error, not an endless wait', async () => {
    const held = gate();
    server.route = request => ({ ...healthy(request), after: held.promise });
    const s = makeStore(200);
    await s.start();
    await waitFor(() => s.state.phase === 'error');
    held.open();
    expect(s.state.error?.kind).toBe('timeout');
    expect(s.state.slow).toBe(false);
  });

  it('keeps the last good data when a refresh fails, and backs off', async () => {
    server.route = healthy;
    const s = makeStore();
    await s.start();
    await waitFor(() => s.state.phase === 'ready');
    server.route = () => ({ status: 500, json: { error: 'Internal: boom' } });
    await s.refresh();
    await waitFor(() => s.state.phase === 'error');
    expect(s.state.error?.message).toBe('Internal: boom');
    expect(s.state.models).toHaveLength(3);
    expect(s.state.updatedAt).not.toBeNull();
    await waitFor(() => s.poll.state.phase === 'rejected');
  });

  it('reports a missing server extension as such', async () => {
    const s = makeStore();
    await s.start();
    await waitFor(() => s.state.phase === 'error');
    expect(s.state.error?.kind).toBe('missing-extension');
  });

  it("records an action's error under its model, and refreshes after it", async () => {
    server.route = healthy;
    const s = makeStore();
    await s.start();
    await waitFor(() => s.state.phase === 'ready');
    server.route = request =>
      request.method === 'POST'
        ? {
            status: 400,
            json: {
              error: 'No previous version of half_plus_two to roll back to'
            }
          }
        : healthy(request);
    const before = server.requests.length;
    const ok = await s.rollback('half_plus_two');
    expect(ok).toBe(false);
    expect(s.state.messages.half_plus_two).toEqual({
      kind: 'error',
      text: 'No previous version of half_plus_two to roll back to'
    });
    expect(s.state.pending).toEqual({});
    await waitFor(() =>
      server.requests.slice(before).some(r => r.method === 'GET')
    );
    s.dismiss('half_plus_two');
    expect(s.state.messages.half_plus_two).toBeUndefined();
  });

  it('keeps an accepted unload pending until the model is gone, then says it is done', async () => {
    const held = gate();
    let listingsAfterDelete = -1;
    let gone = false; // the server unloads in the background: the listing shows the model until then
    server.route = request => {
      if (request.method === 'DELETE') {
        listingsAfterDelete = 0;
        return { json: {}, after: held.promise };
      }
      if (
        request.method === 'GET' &&
        request.path.split('?')[0].endsWith('/models') &&
        listingsAfterDelete >= 0
      ) {
        listingsAfterDelete += 1;
        if (gone) {
          return {
            json: {
              models: fixtures.modelList.models.filter(
                m => m.name !== 'half_plus_two'
              )
            }
          };
        }
      }
      return healthy(request);
    };
    const s = makeStore();
    await s.start();
    await waitFor(() => s.state.phase === 'ready');
    const done = s.unload('half_plus_two');
    expect(s.state.pending['unload:half_plus_two']).toBe(true);
    held.open();
    await waitFor(() => listingsAfterDelete >= 2);
    // Accepted, but the list still shows the model: still pending, nothing said to be done.
    expect(s.state.pending['unload:half_plus_two']).toBe(true);
    expect(notes).toEqual([]);
    gone = true;
    expect(await done).toBe(true);
    expect(s.state.models.map(m => m.name)).not.toContain('half_plus_two');
    expect(s.state.pending).toEqual({});
    expect(notes).toEqual(['success: Unloaded half_plus_two']);
    expect(s.state.messages).toEqual({}); // transient: notified, not kept beside the card
  });

  it('says a rollback is done once the older version serves', async () => {
    let rolledBack = false;
    const pinned = {
      ...fixtures.halfPlusTwo,
      policy: { specific: { versions: [1] } },
      versions: [
        {
          ...fixtures.halfPlusTwo.versions[0],
          version: 1,
          path: '/models/half_plus_two/1'
        }
      ]
    };
    server.route = request => {
      if (request.path.includes('/rollback')) {
        rolledBack = true;
        return {
          status: 202,
          json: {
            name: 'half_plus_two',
            version: 1,
            from_version: 2,
            policy: {}
          }
        };
      }
      if (request.path.includes('/config/reload')) {
        return { json: { models: ['a', 'b'] } };
      }
      if (
        rolledBack &&
        request.method === 'GET' &&
        request.path.split('?')[0].endsWith('/models')
      ) {
        return { json: { models: [pinned] } };
      }
      return healthy(request);
    };
    const s = makeStore();
    await s.start();
    expect(await s.rollback('half_plus_two')).toBe(true);
    expect(s.state.models[0].policy).toBe('specific:1');
    expect(await s.reloadConfig()).toBe(true);
    expect(notes).toEqual([
      'success: Rolled half_plus_two back to version 1',
      'success: Reloaded the model config: 2 models'
    ]);
  });

  it('says a load that fails did not load, with the version error', async () => {
    server.route = healthy; // the listing has "broken" with a failed version 3
    const s = makeStore();
    await s.start();
    expect(await s.load({ name: 'broken', base_path: '/models/broken' })).toBe(
      false
    );
    expect(notes).toEqual([
      'error: broken did not load: version 3: SavedModel file does not exist at: /models/broken/3'
    ]);
    expect(s.state.pending).toEqual({});
  });

  it('says when an accepted action is still not done after the time allowed', async () => {
    server.route = healthy; // the model never goes away
    const s = makeStore(5000, 1000);
    await s.start();
    expect(await s.unload('half_plus_two')).toBe(false);
    expect(notes[0]).toBe(
      'error: Unloading half_plus_two: not done after 1 s; the panel shows where it is'
    );
    expect(s.state.pending).toEqual({});
  });
});
