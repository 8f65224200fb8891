/**
 * What changes which version serves a model: serve the latest again (only
 * after a rollback pinned one), roll back, unload. Each is disabled while
 * another one on the same model is under way.
 */

import { Button } from '@jupyterlab/ui-components';
import * as React from 'react';

import { IModelInfo, isPinned } from '../model';
import { IViewActions } from './actions';
import { CLASS } from './css';
import { useTranslation } from './translation';

export function ModelActions({
  model,
  serving,
  busy,
  pending,
  actions
}: {
  model: IModelInfo;
  /** Whether a version answers requests; there is nothing to roll back from otherwise. */
  serving: boolean;
  /** An unload or a rollback of this model is under way. */
  busy: boolean;
  pending: { [key: string]: boolean };
  actions: IViewActions;
}): JSX.Element {
  const trans = useTranslation();
  return (
    <div className={`${CLASS}-actions`}>
      {isPinned(model) && (
        <Button
          small
          title={trans.__(
            'Serve the newest version again (policy latest:1 instead of %1)',
            model.policy
          )}
          disabled={busy || !!pending.load}
          onClick={() => actions.serveLatest(model.name, model.basePath)}
        >
          {trans.__('Serve latest')}
        </Button>
      )}
      <Button
        small
        title={trans.__('Serve the previous version again')}
        disabled={busy || !serving}
        onClick={() => actions.rollback(model.name)}
      >
        {pending[`rollback:${model.name}`]
          ? trans.__('Rolling back…')
          : trans.__('Roll back')}
      </Button>
      <Button
        small
        className={`${CLASS}-danger`}
        title={trans.__('Stop serving this model')}
        disabled={busy}
        onClick={() => actions.unload(model.name)}
      >
        {pending[`unload:${model.name}`]
          ? trans.__('Unloading…')
          : trans.__('Unload')}
      </Button>
    </div>
  );
}
