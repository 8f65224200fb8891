/**
 * The panel's state, kept fresh by polling the management API.
 *
 * The view renders one immutable snapshot (`IPanelState`) and calls the
 * actions below; it never talks to the server itself. Polling is a Lumino
 * `Poll`:
 *
 * - while the panel is visible it refreshes every `pollInterval`;
 * - while the panel (or the browser tab) is hidden it stands by and asks
 *   nothing, and showing the panel refreshes at once;
 * - after a failed refresh it backs off (the interval grows up to
 *   `maxInterval`) and keeps showing the last data it had, marked stale.
 *
 * Each refresh reads the model list, the server info and the request
 * counters (rates and latency percentiles come from successive readings, see
 * `RateWindow`); with batching on, also each serving model's batch size and
 * queue. Only the model list is essential: when the rest fails, the panel
 * keeps its last numbers.
 *
 * A refresh that takes longer than `slowAfterMs` marks the state `slow`, so
 * the view can say it is waiting; the client's deadline turns a server that
 * never answers into an error, never an endless spinner.
 *
 * Actions (load, unload, rollback) are accepted by the server before they are
 * done. The store keeps such an action pending until the model list shows its
 * effect, and only then tells the notifier it is done ("Unloaded half_plus_two"),
 * so nothing says "Loading" beside an AVAILABLE badge or "Rolling back" after
 * the rollback. Outcomes are transient (the notifier shows them and they go);
 * `messages` keeps only what the server refused, beside what it concerns.
 */

import { Poll } from '@lumino/polling';
import { ISignal, Signal } from '@lumino/signaling';

import { ApiError, ILoadRequest, TfServeClient } from './api';
import {
  IModelInfo,
  IModelStats,
  IServerInfo,
  isFailed,
  policyText,
  servingVersion
} from './model';
import { IModelCounters, RateWindow } from './rates';

export type Phase = 'loading' | 'ready' | 'error';

export interface IMessage {
  kind: 'error' | 'success';
  text: string;
}

export interface IPanelState {
  phase: Phase;
  /** A refresh has been waiting for longer than `slowAfterMs`. */
  slow: boolean;
  /** Why the last refresh failed; the data below is then the last good one. */
  error: ApiError | null;
  info: IServerInfo | null;
  models: IModelInfo[];
  stats: { [model: string]: IModelStats };
  /** Actions in flight, by key (`unload:<model>`, `load`, `reload`, ...). */
  pending: { [key: string]: boolean };
  /** Outcome of the last action per scope: a model's name, `load`, or `panel`. */
  messages: { [scope: string]: IMessage };
  updatedAt: number | null;
}

/**
 * Where transient feedback goes (JupyterLab's notifications in the panel): how
 * an action ended, once it has. While it runs, the panel itself shows it (a
 * "Loading…" button, a LOADING badge), so nothing needs to be taken back.
 */
export type Notifier = (outcome: IMessage) => void;

/** Says nothing: for a store nobody looks at. */
export const SILENT: Notifier = () => undefined;

/** What an accepted action waits for: its outcome once the model list shows it, else null. */
type Settled = (models: IModelInfo[]) => IMessage | null;

export interface IStoreOptions {
  client: TfServeClient;
  /** Milliseconds between refreshes while visible. */
  pollInterval?: number;
  /** Longest interval the poll backs off to after failures. */
  maxInterval?: number;
  slowAfterMs?: number;
  /** Whether anybody is looking; the poll stands by while this is false. */
  isVisible?: () => boolean;
  notifier?: Notifier;
  /** How often an accepted action re-reads the model list until it shows the effect. */
  settleIntervalMs?: number;
  /** How long an accepted action may take before the store says it is still not done. */
  settleTimeoutMs?: number;
}

const INITIAL: IPanelState = {
  phase: 'loading',
  slow: false,
  error: null,
  info: null,
  models: [],
  stats: {},
  pending: {},
  messages: {},
  updatedAt: null
};

export class TfServeStore {
  constructor(options: IStoreOptions) {
    this.client = options.client;
    this._slowAfterMs = options.slowAfterMs ?? 1500;
    this._notifier = options.notifier ?? SILENT;
    this._settleIntervalMs = options.settleIntervalMs ?? 500;
    this._settleTimeoutMs = options.settleTimeoutMs ?? 300000;
    const isVisible = options.isVisible ?? (() => true);
    this._poll = new Poll({
      auto: false,
      factory: () => this._refresh(),
      frequency: {
        interval: options.pollInterval ?? 2000,
        backoff: true,
        max: options.maxInterval ?? 60000
      },
      name: 'jupyter-tfserve:poll',
      standby: () => !isVisible() || 'when-hidden'
    });
  }

  readonly client: TfServeClient;

  get state(): IPanelState {
    return this._state;
  }

  get changed(): ISignal<this, IPanelState> {
    return this._changed;
  }

  /** The poll, exposed so callers can see its phase (standby while hidden). */
  get poll(): Poll {
    return this._poll;
  }

  set pollInterval(ms: number) {
    this._poll.frequency = { ...this._poll.frequency, interval: ms };
  }

  start(): Promise<void> {
    return this._poll.start();
  }

  /** Refresh now (when the panel is shown, after an action, from the refresh button). */
  refresh(): Promise<void> {
    return this._poll.refresh();
  }

  dispose(): void {
    this._poll.dispose();
    Signal.clearData(this);
  }

  // ------------------------------------------------------------------ actions
  load(request: ILoadRequest): Promise<boolean> {
    const wanted = policyText(request.policy);
    return this._act('load', 'load', async () => {
      await this.client.load(request);
      return {
        started: `Loading ${request.name}`,
        settled: loaded(request.name, wanted)
      };
    });
  }

  unload(name: string): Promise<boolean> {
    return this._act(`unload:${name}`, name, async () => {
      await this.client.unload(name);
      return {
        started: `Unloading ${name}`,
        settled: models =>
          models.some(m => m.name === name)
            ? null
            : { kind: 'success', text: `Unloaded ${name}` }
      };
    });
  }

  rollback(name: string): Promise<boolean> {
    return this._act(`rollback:${name}`, name, async () => {
      const version = await this.client.rollback(name);
      return {
        started: `Rolling ${name} back${version === undefined ? '' : ` to version ${version}`}`,
        settled: models => {
          const serving = servingVersion(
            models.find(m => m.name === name) ?? NO_MODEL
          );
          const done =
            serving !== undefined &&
            (version === undefined || serving.version === version);
          return done
            ? {
                kind: 'success',
                text: `Rolled ${name} back to version ${serving!.version}`
              }
            : null;
        }
      };
    });
  }

  setLabel(name: string, label: string, version: number): Promise<boolean> {
    return this._act(`label:${name}`, name, async () => {
      await this.client.setLabel(name, label, version);
      return {
        done: `Label "${label}" of ${name} now points at version ${version}`
      };
    });
  }

  removeLabel(name: string, label: string): Promise<boolean> {
    return this._act(`label:${name}`, name, async () => {
      await this.client.removeLabel(name, label);
      return { done: `Removed label "${label}" of ${name}` };
    });
  }

  reloadConfig(): Promise<boolean> {
    return this._act('reload', 'panel', async () => {
      const models = await this.client.reloadConfig();
      return {
        done: `Reloaded the model config: ${models.length} model${models.length === 1 ? '' : 's'}`
      };
    });
  }

  /** Tell the user something that happened in the browser alone (a copied snippet). */
  note(text: string): void {
    this._notifier({ kind: 'success', text });
  }

  /** Forget an action's message (the user closed it). */
  dismiss(scope: string): void {
    const messages = { ...this._state.messages };
    delete messages[scope];
    this._set({ messages });
  }

  // ------------------------------------------------------------------ internals
  /**
   * Run one action under `key`. A refusal is recorded under `scope` (the
   * server's words, beside what it concerns). An accepted action that takes
   * effect later stays pending until the model list shows it (`settled`),
   * re-reading the list meanwhile; then its outcome goes to the notifier.
   * Resolves to whether the action succeeded.
   */
  private async _act(
    key: string,
    scope: string,
    action: () => Promise<IAccepted>
  ): Promise<boolean> {
    const messages = { ...this._state.messages };
    delete messages[scope];
    this._set({ pending: { ...this._state.pending, [key]: true }, messages });
    let outcome: IMessage;
    try {
      const accepted = await action();
      outcome = accepted.settled
        ? await this._settle(accepted.settled, accepted.started ?? '')
        : { kind: 'success', text: accepted.done ?? '' };
      this._notifier(outcome);
    } catch (error) {
      outcome = { kind: 'error', text: errorText(error) };
      this._set({ messages: { ...this._state.messages, [scope]: outcome } });
    }
    const pending = { ...this._state.pending };
    delete pending[key];
    this._set({ pending });
    void this.refresh();
    return outcome.kind === 'success';
  }

  /** Re-read the model list until `settled` says how the action ended, or the time is up. */
  private async _settle(settled: Settled, what: string): Promise<IMessage> {
    const deadline = Date.now() + this._settleTimeoutMs;
    for (;;) {
      try {
        await this._refresh();
      } catch {
        // the panel shows the failed refresh; keep waiting for the effect
      }
      const outcome = settled(this._state.models);
      if (outcome) {
        return outcome;
      }
      if (Date.now() >= deadline) {
        return {
          kind: 'error',
          text: `${what}: not done after ${Math.round(this._settleTimeoutMs / 1000)} s; the panel shows where it is`
        };
      }
      await new Promise(resolve => setTimeout(resolve, this._settleIntervalMs));
    }
  }

  private async _refresh(): Promise<void> {
    const slowTimer = setTimeout(
      () => this._set({ slow: true }),
      this._slowAfterMs
    );
    try {
      const [models, info, counters] = await Promise.all([
        this.client.listModels(),
        this._optional(() => this.client.info(), this._state.info),
        this._optional(() => this.client.metrics(), null)
      ]);
      if (counters) {
        this._rates.add(Date.now(), counters);
      }
      const stats = await this._stats(models, info, counters);
      this._set({
        phase: 'ready',
        error: null,
        models,
        info,
        stats,
        updatedAt: Date.now()
      });
    } catch (error) {
      const apiError =
        error instanceof ApiError
          ? error
          : new ApiError('bad-response', errorText(error));
      this._set({ phase: 'error', error: apiError });
      throw apiError; // the poll backs off on a rejected tick
    } finally {
      clearTimeout(slowTimer);
      if (this._state.slow) {
        this._set({ slow: false });
      }
    }
  }

  /**
   * A read the panel can do without: an error answer from the API gives
   * `fallback`. Errors that mean the API is unreachable still fail the refresh.
   */
  private async _optional<T>(read: () => Promise<T>, fallback: T): Promise<T> {
    try {
      return await read();
    } catch (error) {
      if (
        error instanceof ApiError &&
        (error.kind === 'http' || error.kind === 'bad-response')
      ) {
        return fallback;
      }
      throw error;
    }
  }

  /** Live numbers of the models that serve; a model whose batching cannot be read keeps its last ones. */
  private async _stats(
    models: IModelInfo[],
    info: IServerInfo | null,
    counters: { [model: string]: IModelCounters } | null
  ): Promise<{ [model: string]: IModelStats }> {
    const stats: { [model: string]: IModelStats } = {};
    await Promise.all(
      models
        .filter(model => servingVersion(model) !== undefined)
        .map(async model => {
          const last = this._state.stats[model.name] ?? {};
          const requests = counters ? this._rates.stats(model.name) : undefined;
          let batching: IModelStats = {};
          if (info?.batching) {
            batching = await this._optional(
              () => this.client.batching(model.name),
              {
                avgBatchSize: last.avgBatchSize,
                queueDepth: last.queueDepth
              }
            );
          }
          stats[model.name] = { ...(requests ?? pick(last)), ...batching };
        })
    );
    return stats;
  }

  private _set(change: Partial<IPanelState>): void {
    this._state = { ...this._state, ...change };
    this._changed.emit(this._state);
  }

  private _state: IPanelState = INITIAL;
  private _notifier: Notifier;
  private _settleIntervalMs: number;
  private _settleTimeoutMs: number;
  private _rates = new RateWindow();
  private _changed = new Signal<this, IPanelState>(this);
  private _poll: Poll;
  private _slowAfterMs: number;
}

/** What an action's server call answered: done already, or `started` (in words) and done once `settled` says so. */
interface IAccepted {
  done?: string;
  started?: string;
  settled?: Settled;
}

const NO_MODEL: IModelInfo = {
  name: '',
  basePath: '',
  platform: '',
  labels: {},
  policy: 'latest:1',
  sourceError: '',
  loggingRate: 0,
  versions: []
};

/**
 * A load is done when the model has the policy asked for and nothing left loading:
 * serving (success) or with no version that serves and a failed one (error).
 */
function loaded(name: string, policy: string): Settled {
  return models => {
    const model = models.find(m => m.name === name);
    if (!model || model.policy !== policy) {
      return null;
    }
    if (
      model.versions.some(v => v.state === 'START' || v.state === 'LOADING')
    ) {
      return null;
    }
    const serving = servingVersion(model);
    if (serving) {
      return {
        kind: 'success',
        text: `Serving ${name} version ${serving.version}`
      };
    }
    const failed = model.versions.find(isFailed);
    if (failed || model.sourceError) {
      return {
        kind: 'error',
        text: `${name} did not load: ${failed ? `version ${failed.version}: ${failed.errorMessage}` : model.sourceError}`
      };
    }
    return null;
  };
}

/** The request numbers of a stats entry (kept when a reading of the counters fails). */
function pick(stats: IModelStats): IModelStats {
  const { requestsPerSecond, p50Ms, p99Ms } = stats;
  return { requestsPerSecond, p50Ms, p99Ms };
}

export function errorText(error: unknown): string {
  if (error instanceof Error) {
    return error.message;
  }
  return String(error);
}
