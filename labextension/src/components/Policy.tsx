/**
 * The version policy and the version that answers requests naming none
 * (TF Serving's `Latest`: the newest AVAILABLE one), plus the request-log
 * sampling rate when the model logs requests.
 */

import * as React from 'react';

import { IModelInfo, servingVersion } from '../model';
import { CLASS } from './css';
import { useTranslation } from './translation';

export function Policy({ model }: { model: IModelInfo }): JSX.Element {
  const trans = useTranslation();
  const serving = servingVersion(model);
  return (
    <div className={`${CLASS}-policy-line`} data-policy={model.policy}>
      {trans.__('policy')} <code>{model.policy}</code>
      {' · '}
      <span
        title={trans.__(
          'The version that answers requests that name no version or label'
        )}
      >
        {serving
          ? trans.__('requests without a version → v%1', serving.version)
          : trans.__('no version answers requests yet')}
      </span>
      {model.loggingRate > 0 && (
        <>
          {' · '}
          <span
            className={`${CLASS}-logging`}
            title={trans.__(
              "Sampled requests and their answers go to the model's request log"
            )}
          >
            {trans.__(
              'logging %1% of requests',
              Number((model.loggingRate * 100).toPrecision(3))
            )}
          </span>
        </>
      )}
    </div>
  );
}
