/**
 * The panel's rendering root: pure React components of one `IPanelState`.
 *
 * Nothing under components/ talks to the server or holds state beyond form
 * inputs, so every state (loading, slow, each error, a failed model) can be
 * rendered and checked on its own.
 */

import * as React from 'react';

import { ApiError } from '../api';
import { IViewProps } from './actions';
import { CLASS } from './css';
import { Header } from './Header';
import { LoadForm } from './LoadForm';
import { Message } from './Message';
import { ModelList } from './ModelList';
import { ServerInfo } from './ServerInfo';
import { Status } from './Status';

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

/** Without the server extension there is nothing to load or list: Status says how to enable it. */
function isMissing(error: ApiError | null): boolean {
  return error?.kind === 'missing-extension';
}
