/** The panel's title bar: reload the model config file, refresh now. */

import { Button, refreshIcon } from '@jupyterlab/ui-components';
import * as React from 'react';

import { IViewProps } from './actions';
import { CLASS } from './css';

export function Header({ state, actions }: IViewProps): JSX.Element {
  const noConfigFile = state.info !== null && !state.info.modelConfigFile;
  return (
    <div className={`${CLASS}-header`}>
      <h2 className={`${CLASS}-title`}>TF Serving</h2>
      <Button
        minimal
        small
        title={
          noConfigFile
            ? 'This server has no model config file (set c.TFServe.model_config_file)'
            : `Re-read ${state.info?.modelConfigFile ?? 'the model config file'} and serve what it lists`
        }
        disabled={!!state.pending.reload || noConfigFile}
        onClick={() => actions.reloadConfig()}
      >
        {state.pending.reload ? 'Reloading…' : 'Reload config'}
      </Button>
      <Button
        minimal
        small
        title="Refresh now"
        aria-label="Refresh"
        onClick={() => actions.refresh()}
      >
        <refreshIcon.react tag="span" />
      </Button>
    </div>
  );
}
