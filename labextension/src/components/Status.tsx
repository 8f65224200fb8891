/**
 * Loading, slow and failed refreshes; nothing when the last refresh was fine.
 * A missing server extension gets its own explanation, because no retry can
 * fix it: the user has to enable it and restart Jupyter.
 */

import { Button } from '@jupyterlab/ui-components';
import * as React from 'react';

import { ENABLE_COMMAND, INSTALL_COMMAND } from '../api';
import { IViewProps } from './actions';
import { CLASS } from './css';
import { useTranslation } from './translation';

export function Status({ state, actions }: IViewProps): JSX.Element | null {
  const trans = useTranslation();
  const { error } = state;
  if (state.phase === 'loading') {
    return (
      <div className={`${CLASS}-status`} role="status">
        <div className={`${CLASS}-spinner`} aria-hidden="true" />
        {state.slow
          ? trans.__('Still waiting for the TF Serving server extension…')
          : trans.__('Loading models…')}
      </div>
    );
  }
  if (!error) {
    return state.slow ? (
      <div className={`${CLASS}-status`} role="status">
        <div className={`${CLASS}-spinner`} aria-hidden="true" />
        {trans.__('Waiting for the server…')}
      </div>
    ) : null;
  }
  if (error.kind === 'missing-extension') {
    return (
      <div
        className={`${CLASS}-error`}
        role="alert"
        data-error-kind={error.kind}
      >
        <p>
          <strong>
            {trans.__('The TF Serving server extension is not running')}
          </strong>{' '}
          {trans.__('in this Jupyter server, so there is nothing to show.')}
        </p>
        <p>{trans.__('Enable it, then restart Jupyter:')}</p>
        <pre>{ENABLE_COMMAND}</pre>
        <p>
          {trans.__('If it is not installed, install it first:')}{' '}
          <code>{INSTALL_COMMAND}</code>
        </p>
        <Button small onClick={() => actions.refresh()}>
          {trans.__('Check again')}
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
          {trans.__(
            'Showing what the server said at %1.',
            new Date(state.updatedAt!).toLocaleTimeString()
          )}
        </p>
      )}
      <Button small onClick={() => actions.refresh()}>
        {trans.__('Retry')}
      </Button>
    </div>
  );
}
