/**
 * Loading, slow and failed refreshes; nothing when the last refresh was fine.
 * A missing server extension gets its own explanation, because no retry can
 * fix it: the user has to enable it and restart Jupyter.
 */

import { Button } from '@jupyterlab/ui-components';
import * as React from 'react';

import { ENABLE_COMMAND } from '../api';
import { IViewProps } from './actions';
import { CLASS } from './css';

export function Status({ state, actions }: IViewProps): JSX.Element | null {
  const { error } = state;
  if (state.phase === 'loading') {
    return (
      <div className={`${CLASS}-status`} role="status">
        <div className={`${CLASS}-spinner`} aria-hidden="true" />
        {state.slow
          ? 'Still waiting for the TF Serving server extension…'
          : 'Loading models…'}
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
      <div
        className={`${CLASS}-error`}
        role="alert"
        data-error-kind={error.kind}
      >
        <p>
          <strong>The TF Serving server extension is not running</strong> in
          this Jupyter server, so there is nothing to show.
        </p>
        <p>Enable it, then restart Jupyter:</p>
        <pre>{ENABLE_COMMAND}</pre>
        <p>
          If it is not installed, install it first:{' '}
          <code>pip install jupyter-tfserve</code>
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
          Showing what the server said at{' '}
          {new Date(state.updatedAt!).toLocaleTimeString()}.
        </p>
      )}
      <Button small onClick={() => actions.refresh()}>
        Retry
      </Button>
    </div>
  );
}
