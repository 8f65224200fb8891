/** One card per served model, or the ways to serve a first one. */

import * as React from 'react';

import { IViewProps } from './actions';
import { CLASS } from './css';
import { ModelCard } from './ModelCard';
import { useTranslation } from './translation';

/** The notebook magic that exports and serves a model. */
const MAGIC = '%tfserve';

export function ModelList({ state, actions }: IViewProps): JSX.Element {
  const trans = useTranslation();
  if (state.models.length === 0) {
    return (
      <p className={`${CLASS}-empty`}>
        {trans.__(
          'No models are served yet. Load one above, export one from a notebook with'
        )}{' '}
        <code>{MAGIC}</code>
        {trans.__(', or list them in the model config file.')}
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
