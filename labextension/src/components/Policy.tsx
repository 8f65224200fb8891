/**
 * The version policy and the version that answers requests naming none
 * (TF Serving's `Latest`: the newest AVAILABLE one), plus the request-log
 * sampling rate when the model logs requests.
 */

import * as React from 'react';

import { IModelInfo, servingVersion } from '../model';
import { CLASS } from './css';

export function Policy({ model }: { model: IModelInfo }): JSX.Element {
  const serving = servingVersion(model);
  return (
    <div className={`${CLASS}-policy-line`} data-policy={model.policy}>
      policy <code>{model.policy}</code>
      {' · '}
      <span title="The version that answers requests that name no version or label">
        {serving
          ? `requests without a version → v${serving.version}`
          : 'no version answers requests yet'}
      </span>
      {model.loggingRate > 0 && (
        <>
          {' · '}
          <span
            className={`${CLASS}-logging`}
            title="Sampled requests and their answers go to the model's request log"
          >
            logging {Number((model.loggingRate * 100).toPrecision(3))}% of
            requests
          </span>
        </>
      )}
    </div>
  );
}
