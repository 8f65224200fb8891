/**
 * A model's version labels and a form to set one. A label may only point at
 * an AVAILABLE version (TF Serving refuses others); one whose version went
 * away is flagged, since requests for it now fail.
 */

import { Button, HTMLSelect } from '@jupyterlab/ui-components';
import * as React from 'react';

import { IModelInfo, unavailableLabels } from '../model';
import { IViewActions } from './actions';
import { CLASS } from './css';

export function Labels({
  model,
  pending,
  actions
}: {
  model: IModelInfo;
  pending: boolean;
  actions: IViewActions;
}): JSX.Element | null {
  const available = model.versions
    .filter(v => v.state === 'AVAILABLE')
    .map(v => v.version);
  const [label, setLabel] = React.useState('');
  const [version, setVersion] = React.useState<number | null>(null);
  const labels = Object.keys(model.labels).sort();
  if (available.length === 0 && labels.length === 0) {
    return null;
  }
  const target =
    version !== null && available.includes(version) ? version : available[0];
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
          {broken.includes(name) && (
            <span className={`${CLASS}-warning`}> (not available)</span>
          )}
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
