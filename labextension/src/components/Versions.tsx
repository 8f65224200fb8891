/** Each version, its state and platform, and why it failed; labels are listed once, under Labels. */

import * as React from 'react';

import { isFailed, IVersionInfo } from '../model';
import { CLASS } from './css';
import { StateBadge } from './StateBadge';
import { useTranslation } from './translation';

export function Versions({
  versions
}: {
  versions: IVersionInfo[];
}): JSX.Element {
  const trans = useTranslation();
  return (
    <ul className={`${CLASS}-versions`}>
      {versions.map(v => (
        <li key={v.version} data-version={v.version}>
          <span className={`${CLASS}-version`}>
            {trans.__('v%1', v.version)}
          </span>
          <StateBadge version={v} />
          {v.platform && (
            <span
              className={`${CLASS}-platform`}
              title={trans.__('the platform serving this version')}
            >
              {v.platform}
            </span>
          )}
          {isFailed(v) && (
            <div className={`${CLASS}-model-error`} role="alert">
              {v.errorCode !== 'OK' && <strong>{v.errorCode}: </strong>}
              {v.errorMessage}
            </div>
          )}
        </li>
      ))}
    </ul>
  );
}
