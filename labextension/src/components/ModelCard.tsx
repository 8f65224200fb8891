/**
 * Everything about one served model in one card: its state, where it is
 * loaded from, its policy, live numbers, versions, labels, signatures, and
 * what can be done with it.
 */

import * as React from 'react';

import {
  IModelInfo,
  IModelStats,
  servingVersion,
  visibleVersions
} from '../model';
import { IMessage } from '../store';
import { IViewActions } from './actions';
import { CLASS } from './css';
import { Labels } from './Labels';
import { Message } from './Message';
import { ModelActions } from './ModelActions';
import { Policy } from './Policy';
import { Signature } from './Signature';
import { SnippetButtons } from './SnippetButtons';
import { StateBadge } from './StateBadge';
import { hasNumbers, Stats } from './Stats';
import { Versions } from './Versions';

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
  const busy = !!(
    pending[`unload:${model.name}`] || pending[`rollback:${model.name}`]
  );
  return (
    <section
      className={`${CLASS}-model`}
      data-model={model.name}
      aria-busy={busy || undefined}
    >
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
      <Labels
        model={model}
        pending={!!pending[`label:${model.name}`]}
        actions={actions}
      />
      {serving &&
        serving.signatures.map(sig => (
          <Signature key={sig.key} signature={sig} />
        ))}
      {serving && <SnippetButtons name={model.name} actions={actions} />}
      <ModelActions
        model={model}
        serving={!!serving}
        busy={busy}
        pending={pending}
        actions={actions}
      />
    </section>
  );
}
