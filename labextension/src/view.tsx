/**
 * The panel's rendering: pure React components of one `IPanelState`.
 *
 * Nothing here talks to the server or holds state beyond form inputs, so
 * every state (loading, slow, each error, a failed model) can be rendered
 * and checked on its own. Colours and spacing come from JupyterLab's CSS
 * variables (see style/base.css), so the panel follows the light and the
 * dark theme.
 */

import { Button, HTMLSelect, copyIcon, refreshIcon } from '@jupyterlab/ui-components';
import * as React from 'react';

import { ApiError, ENABLE_COMMAND, VersionPolicy } from './api';
import {
  IModelInfo,
  IModelStats,
  IServerInfo,
  ISignatureInfo,
  ITensorInfo,
  IVersionInfo,
  isFailed,
  isPinned,
  servingVersion,
  unavailableLabels,
  visibleVersions
} from './model';
import { SNIPPET_LABELS, SnippetKind } from './snippets';
import { IMessage, IPanelState } from './store';

/** What the view can ask for; the panel widget wires these to the store. */
export interface IViewActions {
  refresh(): void;
  reloadConfig(): void;
  /** An empty `basePath` lets the server use `{models_root}/{name}`. */
  load(name: string, basePath: string, policy: VersionPolicy): void;
  unload(name: string): void;
  /** Load `name` again with `latest:1` (after a rollback pinned a version). */
  serveLatest(name: string, basePath: string): void;
  rollback(name: string): void;
  setLabel(name: string, label: string, version: number): void;
  removeLabel(name: string, label: string): void;
  copySnippet(name: string, kind: SnippetKind): void;
  dismiss(scope: string): void;
}

export interface IViewProps {
  state: IPanelState;
  actions: IViewActions;
}

const CLASS = 'jp-TfServe';

/** Short names that fit the sidebar; the button's title says more. */
const SNIPPET_BUTTONS: { [kind in SnippetKind]: string } = {
  curl: 'curl',
  python: 'requests',
  grpc: 'gRPC'
};

export function PanelView({ state, actions }: IViewProps): JSX.Element {
  return (
    <div className={`${CLASS}-body`}>
      <Header state={state} actions={actions} />
      <ServerInfo info={state.info} />
      <Message scope="panel" message={state.messages.panel} actions={actions} />
      <Status state={state} actions={actions} />
      {state.phase !== 'loading' && !isMissing(state.error) && (
        <>
          <LoadForm
            modelsRoot={state.info?.modelsRoot ?? ''}
            pending={!!state.pending.load}
            message={state.messages.load}
            actions={actions}
          />
          <ModelList state={state} actions={actions} />
        </>
      )}
    </div>
  );
}

function isMissing(error: ApiError | null): boolean {
  return error?.kind === 'missing-extension';
}

function Header({ state, actions }: IViewProps): JSX.Element {
  const noConfigFile = state.info !== null && !state.info.modelConfigFile;
  return (
    <div className={`${CLASS}-header`}>
      <h2 className={`${CLASS}-title`}>TF Serving</h2>
      <Button
        minimal
        small
        title={
          noConfigFile
            ? 'This server has no model config file (set c.TFServe.model_config_file)'
            : `Re-read ${state.info?.modelConfigFile ?? 'the model config file'} and serve what it lists`
        }
        disabled={!!state.pending.reload || noConfigFile}
        onClick={() => actions.reloadConfig()}
      >
        {state.pending.reload ? 'Reloading…' : 'Reload config'}
      </Button>
      <Button minimal small title="Refresh now" aria-label="Refresh" onClick={() => actions.refresh()}>
        <refreshIcon.react tag="span" />
      </Button>
    </div>
  );
}

function ServerInfo({ info }: { info: IServerInfo | null }): JSX.Element | null {
  if (!info) {
    return null;
  }
  const port = (value: number | null) => (value ? `:${value}` : 'off');
  return (
    <div className={`${CLASS}-info`}>
      <div>
        {info.embedded ? 'Embedded in Jupyter' : 'Standalone server'}
        {info.version && ` · v${info.version}`}
        {info.uptimeSeconds !== null && ` · up ${formatDuration(info.uptimeSeconds)}`}
      </div>
      <div>
        REST <code>{port(info.restPort)}</code> · gRPC <code>{port(info.grpcPort)}</code>
      </div>
      {info.warnings.map(warning => (
        <div key={warning} className={`${CLASS}-warning`}>
          {warning}
        </div>
      ))}
    </div>
  );
}

/** Loading, slow and failed refreshes; nothing when the last refresh was fine. */
function Status({ state, actions }: IViewProps): JSX.Element | null {
  const { error } = state;
  if (state.phase === 'loading') {
    return (
      <div className={`${CLASS}-status`} role="status">
        <div className={`${CLASS}-spinner`} aria-hidden="true" />
        {state.slow ? 'Still waiting for the TF Serving server extension…' : 'Loading models…'}
      </div>
    );
  }
  if (!error) {
    return state.slow ? (
      <div className={`${CLASS}-status`} role="status">
        <div className={`${CLASS}-spinner`} aria-hidden="true" />
        Waiting for the server…
      </div>
    ) : null;
  }
  if (error.kind === 'missing-extension') {
    return (
      <div className={`${CLASS}-error`} role="alert" data-error-kind={error.kind}>
        <p>
          <strong>The TF Serving server extension is not running</strong> in this Jupyter server,
          so there is nothing to show.
        </p>
        <p>Enable it, then restart Jupyter:</p>
        <pre>{ENABLE_COMMAND}</pre>
        <p>
          If it is not installed, install it first: <code>pip install jupyter-tfserve</code>
        </p>
        <Button small onClick={() => actions.refresh()}>
          Check again
        </Button>
      </div>
    );
  }
  const stale = state.updatedAt !== null;
  return (
    <div className={`${CLASS}-error`} role="alert" data-error-kind={error.kind}>
      <p>{error.message}</p>
      {stale && (
        <p className={`${CLASS}-muted`}>
          Showing what the server said at {new Date(state.updatedAt!).toLocaleTimeString()}.
        </p>
      )}
      <Button small onClick={() => actions.refresh()}>
        Retry
      </Button>
    </div>
  );
}

function Message({
  scope,
  message,
  actions
}: {
  scope: string;
  message: IMessage | undefined;
  actions: IViewActions;
}): JSX.Element | null {
  if (!message) {
    return null;
  }
  return (
    <div
      className={`${CLASS}-message ${CLASS}-message-${message.kind}`}
      role={message.kind === 'error' ? 'alert' : 'status'}
    >
      <span>{message.text}</span>
      <button
        className={`${CLASS}-dismiss`}
        aria-label="Dismiss"
        title="Dismiss"
        onClick={() => actions.dismiss(scope)}
      >
        ×
      </button>
    </div>
  );
}

function ModelList({ state, actions }: IViewProps): JSX.Element {
  if (state.models.length === 0) {
    return (
      <p className={`${CLASS}-empty`}>
        No models are served yet. Load one above, export one from a notebook with{' '}
        <code>%tfserve</code>, or list them in the model config file.
      </p>
    );
  }
  return (
    <div className={`${CLASS}-models`}>
      {state.models.map(model => (
        <ModelCard
          key={model.name}
          model={model}
          stats={state.stats[model.name]}
          pending={state.pending}
          message={state.messages[model.name]}
          actions={actions}
        />
      ))}
    </div>
  );
}

export function ModelCard({
  model,
  stats,
  pending,
  message,
  actions
}: {
  model: IModelInfo;
  stats: IModelStats | undefined;
  pending: { [key: string]: boolean };
  message: IMessage | undefined;
  actions: IViewActions;
}): JSX.Element {
  const serving = servingVersion(model);
  const versions = visibleVersions(model);
  const busy = pending[`unload:${model.name}`] || pending[`rollback:${model.name}`];
  return (
    <section className={`${CLASS}-model`} data-model={model.name} aria-busy={busy || undefined}>
      <div className={`${CLASS}-model-header`}>
        <h3 className={`${CLASS}-model-name`}>{model.name}</h3>
        <StateBadge version={serving ?? versions[0]} />
      </div>
      <div className={`${CLASS}-path`} title={model.basePath}>
        {/* The box is right-to-left so a long path loses its start, not its end; the path itself stays left-to-right. */}
        <span dir="ltr">{model.basePath}</span>
      </div>
      {model.sourceError && (
        <div className={`${CLASS}-model-error`} role="alert">
          {model.sourceError}
        </div>
      )}
      <Policy model={model} />
      <Message scope={model.name} message={message} actions={actions} />
      {serving && stats && hasNumbers(stats) && <Stats stats={stats} />}
      <Versions versions={versions} />
      <Labels model={model} pending={!!pending[`label:${model.name}`]} actions={actions} />
      {serving && serving.signatures.map(sig => <Signature key={sig.key} signature={sig} />)}
      {serving && (
        <div className={`${CLASS}-actions ${CLASS}-snippets`}>
          <copyIcon.react tag="span" className={`${CLASS}-button-icon`} title="Copy an example" />
          {(Object.keys(SNIPPET_LABELS) as SnippetKind[]).map(kind => (
            <Button
              key={kind}
              small
              minimal
              title={`Copy a ${SNIPPET_LABELS[kind]} example to the clipboard`}
              onClick={() => actions.copySnippet(model.name, kind)}
            >
              {SNIPPET_BUTTONS[kind]}
            </Button>
          ))}
        </div>
      )}
      <div className={`${CLASS}-actions`}>
        {isPinned(model) && (
          <Button
            small
            title={`Serve the newest version again (policy latest:1 instead of ${model.policy})`}
            disabled={busy || !!pending.load}
            onClick={() => actions.serveLatest(model.name, model.basePath)}
          >
            Serve latest
          </Button>
        )}
        <Button
          small
          title="Serve the previous version again"
          disabled={busy || !serving}
          onClick={() => actions.rollback(model.name)}
        >
          {pending[`rollback:${model.name}`] ? 'Rolling back…' : 'Roll back'}
        </Button>
        <Button
          small
          className={`${CLASS}-danger`}
          title="Stop serving this model"
          disabled={busy}
          onClick={() => actions.unload(model.name)}
        >
          {pending[`unload:${model.name}`] ? 'Unloading…' : 'Unload'}
        </Button>
      </div>
    </section>
  );
}

export function StateBadge({ version }: { version: IVersionInfo | undefined }): JSX.Element {
  if (!version) {
    return <span className={`${CLASS}-badge ${CLASS}-badge-none`}>NO VERSION</span>;
  }
  const failed = isFailed(version);
  const text = failed ? 'ERROR' : version.state;
  const kind = failed ? 'error' : version.state.toLowerCase();
  return (
    <span className={`${CLASS}-badge ${CLASS}-badge-${kind}`} title={version.errorMessage || undefined}>
      {version.state === 'LOADING' && <span className={`${CLASS}-spinner ${CLASS}-spinner-small`} />}
      {text}
    </span>
  );
}

function hasNumbers(stats: IModelStats): boolean {
  return Object.values(stats).some(value => value !== undefined);
}

/** Three significant figures at most, so a trickle (0.03 req/s) does not read as zero. */
export function formatNumber(n: number | undefined, unit = ''): string {
  if (n === undefined) {
    return '—';
  }
  const digits = n === 0 || Math.abs(n) >= 100 ? 0 : Math.abs(n) >= 10 ? 1 : Math.abs(n) >= 1 ? 2 : 3;
  return `${Number(n.toFixed(digits))}${unit}`;
}

function Stats({ stats }: { stats: IModelStats }): JSX.Element {
  const items: [string, string, string][] = [
    ['req/s', formatNumber(stats.requestsPerSecond), 'Requests per second, over the last 30 s'],
    ['p50', formatNumber(stats.p50Ms, ' ms'), 'Median request latency, over the last 30 s'],
    ['p99', formatNumber(stats.p99Ms, ' ms'), '99th percentile request latency, over the last 30 s']
  ];
  // Batch size and queue depth exist only when the server batches requests.
  if (stats.avgBatchSize !== undefined || stats.queueDepth !== undefined) {
    items.push(
      ['batch', formatNumber(stats.avgBatchSize), 'Average batch size (rows per batch)'],
      ['queue', formatNumber(stats.queueDepth), 'Rows waiting to be batched']
    );
  }
  return (
    <dl className={`${CLASS}-stats`}>
      {items.map(([label, text, title]) => (
        <div key={label} title={title}>
          <dt>{label}</dt>
          <dd>{text}</dd>
        </div>
      ))}
    </dl>
  );
}

/**
 * The version policy and the version that answers requests naming none
 * (TF Serving's `Latest`: the newest AVAILABLE one).
 */
export function Policy({ model }: { model: IModelInfo }): JSX.Element {
  const serving = servingVersion(model);
  return (
    <div className={`${CLASS}-policy-line`} data-policy={model.policy}>
      policy <code>{model.policy}</code>
      {' · '}
      <span title="The version that answers requests that name no version or label">
        {serving ? `requests without a version → v${serving.version}` : 'no version answers requests yet'}
      </span>
      {model.loggingRate > 0 && (
        <>
          {' · '}
          <span className={`${CLASS}-logging`} title="Sampled requests and their answers go to the model's request log">
            logging {Number((model.loggingRate * 100).toPrecision(3))}% of requests
          </span>
        </>
      )}
    </div>
  );
}

/** Each version and its state; labels are listed once, under Labels. */
function Versions({ versions }: { versions: IVersionInfo[] }): JSX.Element {
  return (
    <ul className={`${CLASS}-versions`}>
      {versions.map(v => (
        <li key={v.version} data-version={v.version}>
          <span className={`${CLASS}-version`}>v{v.version}</span>
          <StateBadge version={v} />
          {v.platform && (
            <span className={`${CLASS}-platform`} title="the platform serving this version">
              {v.platform}
            </span>
          )}
          {isFailed(v) && (
            <div className={`${CLASS}-model-error`} role="alert">
              {v.errorCode !== 'OK' && <strong>{v.errorCode}: </strong>}
              {v.errorMessage}
            </div>
          )}
        </li>
      ))}
    </ul>
  );
}

function Labels({
  model,
  pending,
  actions
}: {
  model: IModelInfo;
  pending: boolean;
  actions: IViewActions;
}): JSX.Element | null {
  const available = model.versions.filter(v => v.state === 'AVAILABLE').map(v => v.version);
  const [label, setLabel] = React.useState('');
  const [version, setVersion] = React.useState<number | null>(null);
  const labels = Object.keys(model.labels).sort();
  if (available.length === 0 && labels.length === 0) {
    return null;
  }
  const target = version !== null && available.includes(version) ? version : available[0];
  const broken = unavailableLabels(model);
  return (
    <div className={`${CLASS}-labels`}>
      {labels.map(name => (
        <span
          key={name}
          data-label={name}
          className={`${CLASS}-label${broken.includes(name) ? ` ${CLASS}-label-warning` : ''}`}
          title={
            broken.includes(name)
              ? `v${model.labels[name]} is not AVAILABLE: requests for label "${name}" fail`
              : `Requests for label "${name}" go to v${model.labels[name]}`
          }
        >
          {name} → v{model.labels[name]}
          {broken.includes(name) && <span className={`${CLASS}-warning`}> (not available)</span>}
          <button
            className={`${CLASS}-dismiss`}
            aria-label={`Remove label ${name}`}
            title={`Remove label ${name}`}
            disabled={pending}
            onClick={() => actions.removeLabel(model.name, name)}
          >
            ×
          </button>
        </span>
      ))}
      {available.length > 0 && (
        <form
          className={`${CLASS}-label-form`}
          onSubmit={event => {
            event.preventDefault();
            if (label.trim()) {
              actions.setLabel(model.name, label.trim(), target);
              setLabel('');
            }
          }}
        >
          <input
            className="jp-mod-styled"
            placeholder="label"
            aria-label={`New label for ${model.name}`}
            value={label}
            onChange={event => setLabel(event.target.value)}
          />
          <HTMLSelect
            aria-label={`Version for the label of ${model.name}`}
            value={target}
            onChange={event => setVersion(Number(event.target.value))}
            options={available.map(v => ({ label: `v${v}`, value: v }))}
          />
          <Button small type="submit" disabled={pending || !label.trim()}>
            Set label
          </Button>
        </form>
      )}
    </div>
  );
}

export function formatShape(shape: number[] | null): string {
  if (shape === null) {
    return 'unknown rank';
  }
  return `[${shape.map(d => (d < 0 ? '?' : String(d))).join(', ')}]`;
}

/** `DT_FLOAT` -> `float`. */
export function formatDtype(dtype: string): string {
  return dtype.replace(/^DT_/, '').toLowerCase();
}

function TensorRows({ kind, tensors }: { kind: string; tensors: ITensorInfo[] }): JSX.Element {
  return (
    <>
      {tensors.map(t => (
        <tr key={`${kind}:${t.name}`} data-tensor={`${kind}:${t.name}`}>
          <td className={`${CLASS}-muted`}>{kind}</td>
          <td>{t.name}</td>
          <td>{formatDtype(t.dtype)}</td>
          <td>{formatShape(t.shape)}</td>
        </tr>
      ))}
    </>
  );
}

function Signature({ signature }: { signature: ISignatureInfo }): JSX.Element {
  return (
    <details className={`${CLASS}-signature`} open={signature.key === 'serving_default'}>
      <summary>
        signature <code>{signature.key}</code>
      </summary>
      <table>
        <tbody>
          <TensorRows kind="in" tensors={signature.inputs} />
          <TensorRows kind="out" tensors={signature.outputs} />
        </tbody>
      </table>
    </details>
  );
}

function LoadForm({
  modelsRoot,
  pending,
  message,
  actions
}: {
  modelsRoot: string;
  pending: boolean;
  message: IMessage | undefined;
  actions: IViewActions;
}): JSX.Element {
  const [name, setName] = React.useState('');
  const [basePath, setBasePath] = React.useState('');
  const [policy, setPolicy] = React.useState('latest');
  const [count, setCount] = React.useState('1');
  const versions = count
    .split(/[\s,]+/)
    .filter(Boolean)
    .map(Number);
  const countValid = versions.length > 0 && versions.every(n => Number.isInteger(n) && n >= (policy === 'latest' ? 1 : 0));
  const valid = name.trim() !== '' && (policy === 'all' || countValid);
  const submit = (event: React.FormEvent) => {
    event.preventDefault();
    if (!valid) {
      return;
    }
    const chosen: VersionPolicy =
      policy === 'all'
        ? { all: {} }
        : policy === 'specific'
          ? { specific: { versions } }
          : { latest: { num_versions: versions[0] } };
    actions.load(name.trim(), basePath.trim(), chosen);
  };
  return (
    <details className={`${CLASS}-load`}>
      <summary>Load a model</summary>
      <form onSubmit={submit}>
        <label>
          Name
          <input
            className="jp-mod-styled"
            value={name}
            onChange={event => setName(event.target.value)}
            placeholder="my_model"
          />
        </label>
        <label>
          Base path
          <input
            className="jp-mod-styled"
            value={basePath}
            onChange={event => setBasePath(event.target.value)}
            placeholder={
              modelsRoot ? `${modelsRoot}/${name.trim() || '<name>'}` : 'a directory of version directories'
            }
          />
        </label>
        <div className={`${CLASS}-policy`}>
          <HTMLSelect
            aria-label="Version policy"
            value={policy}
            onChange={event => setPolicy(event.target.value)}
            options={[
              { label: 'latest', value: 'latest' },
              { label: 'all', value: 'all' },
              { label: 'specific', value: 'specific' }
            ]}
          />
          {policy !== 'all' && (
            <input
              className="jp-mod-styled"
              aria-label={policy === 'latest' ? 'Number of versions' : 'Versions'}
              value={count}
              onChange={event => setCount(event.target.value)}
              placeholder={policy === 'latest' ? '1' : '1, 2'}
            />
          )}
        </div>
        <Button type="submit" small className={`${CLASS}-primary`} disabled={pending || !valid}>
          {pending ? 'Loading…' : 'Load'}
        </Button>
        <Message scope="load" message={message} actions={actions} />
      </form>
    </details>
  );
}

export function formatDuration(seconds: number): string {
  if (seconds < 60) {
    return `${Math.floor(seconds)} s`;
  }
  if (seconds < 3600) {
    return `${Math.floor(seconds / 60)} min`;
  }
  const hours = Math.floor(seconds / 3600);
  return hours < 48 ? `${hours} h` : `${Math.floor(hours / 24)} d`;
}
