/** The panel's title bar: reload the model config file, refresh now. */

import { Button, refreshIcon } from '@jupyterlab/ui-components';
import * as React from 'react';

import { IViewProps } from './actions';
import { CLASS } from './css';
import { useTranslation } from './translation';

export function Header({ state, actions }: IViewProps): JSX.Element {
  const trans = useTranslation();
  const noConfigFile = state.info !== null && !state.info.modelConfigFile;
  return (
    <div className={`${CLASS}-header`}>
      <h2 className={`${CLASS}-title`}>{trans.__('TF Serving')}</h2>
      <Button
        minimal
        small
        title={
          noConfigFile
            ? trans.__(
                'This server has no model config file (set c.TFServe.model_config_file)'
              )
            : trans.__(
                'Re-read %1 and serve what it lists',
                state.info?.modelConfigFile ?? trans.__('the model config file')
              )
        }
        disabled={!!state.pending.reload || noConfigFile}
        onClick={() => actions.reloadConfig()}
      >
        {state.pending.reload
          ? trans.__('Reloading…')
          : trans.__('Reload config')}
      </Button>
      <Button
        minimal
        small
        title={trans.__('Refresh now')}
        aria-label={trans.__('Refresh')}
        onClick={() => actions.refresh()}
      >
        <refreshIcon.react tag="span" />
      </Button>
    </div>
  );
}
