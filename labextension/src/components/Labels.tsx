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
import { useTranslation } from './translation';

export function Labels({
  model,
  pending,
  actions
}: {
  model: IModelInfo;
  pending: boolean;
  actions: IViewActions;
}): JSX.Element | null {
  const trans = useTranslation();
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
              ? trans.__(
                  'v%1 is not AVAILABLE: requests for label "%2" fail',
                  model.labels[name],
                  name
                )
              : trans.__(
                  'Requests for label "%1" go to v%2',
                  name,
                  model.labels[name]
                )
          }
        >
          {trans.__('%1 → v%2', name, model.labels[name])}
          {broken.includes(name) && (
            <span className={`${CLASS}-warning`}>
              {' '}
              {trans.__('(not available)')}
            </span>
          )}
          <button
            className={`${CLASS}-dismiss`}
            aria-label={trans.__('Remove label %1', name)}
            title={trans.__('Remove label %1', name)}
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
            placeholder={trans.__('label')}
            aria-label={trans.__('New label for %1', model.name)}
            value={label}
            onChange={event => setLabel(event.target.value)}
          />
          <HTMLSelect
            aria-label={trans.__('Version for the label of %1', model.name)}
            value={target}
            onChange={event => setVersion(Number(event.target.value))}
            options={available.map(v => ({ label: `v${v}`, value: v }))}
          />
          <Button small type="submit" disabled={pending || !label.trim()}>
            {trans.__('Set label')}
          </Button>
        </form>
      )}
    </div>
  );
}
