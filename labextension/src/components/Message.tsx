/**
 * The outcome of the last action in one scope (the panel, the load form, a
 * model), shown where it happened until dismissed. Errors are alerts so
 * screen readers announce them.
 */

import * as React from 'react';

import { IMessage } from '../store';
import { IViewActions } from './actions';
import { CLASS } from './css';
import { useTranslation } from './translation';

export function Message({
  scope,
  message,
  actions
}: {
  scope: string;
  message: IMessage | undefined;
  actions: IViewActions;
}): JSX.Element | null {
  const trans = useTranslation();
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
        aria-label={trans.__('Dismiss')}
        title={trans.__('Dismiss')}
        onClick={() => actions.dismiss(scope)}
      >
        ×
      </button>
    </div>
  );
}
