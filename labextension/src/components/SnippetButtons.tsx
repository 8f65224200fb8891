/**
 * Copy a ready-to-run request to the model (curl, Python requests, gRPC);
 * shown only while a version serves, since a snippet for nothing would fail.
 */

import { Button, copyIcon } from '@jupyterlab/ui-components';
import * as React from 'react';

import { SNIPPET_LABELS, SnippetKind } from '../snippets';
import { IViewActions } from './actions';
import { CLASS } from './css';
import { useTranslation } from './translation';

/** Short names that fit the sidebar; the button's title says more. */
const SNIPPET_BUTTONS: { [kind in SnippetKind]: string } = {
  curl: 'curl',
  python: 'requests',
  grpc: 'gRPC'
};

export function SnippetButtons({
  name,
  actions
}: {
  name: string;
  actions: IViewActions;
}): JSX.Element {
  const trans = useTranslation();
  return (
    <div className={`${CLASS}-actions ${CLASS}-snippets`}>
      <copyIcon.react
        tag="span"
        className={`${CLASS}-button-icon`}
        title={trans.__('Copy an example')}
      />
      {(Object.keys(SNIPPET_LABELS) as SnippetKind[]).map(kind => (
        <Button
          key={kind}
          small
          minimal
          title={trans.__(
            'Copy a %1 example to the clipboard',
            SNIPPET_LABELS[kind]
          )}
          onClick={() => actions.copySnippet(name, kind)}
        >
          {SNIPPET_BUTTONS[kind]}
        </Button>
      ))}
    </div>
  );
}
