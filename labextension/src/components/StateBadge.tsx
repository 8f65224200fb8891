/**
 * A version's TF Serving state as a coloured badge; a failed load reads
 * ERROR (whatever state it ended in) and its title carries the error.
 */

import * as React from 'react';

import { isFailed, IVersionInfo } from '../model';
import { CLASS } from './css';
import { useTranslation } from './translation';

export function StateBadge({
  version
}: {
  version: IVersionInfo | undefined;
}): JSX.Element {
  const trans = useTranslation();
  if (!version) {
    return (
      <span className={`${CLASS}-badge ${CLASS}-badge-none`}>
        {trans.__('NO VERSION')}
      </span>
    );
  }
  const failed = isFailed(version);
  const text = failed ? trans.__('ERROR') : version.state;
  const kind = failed ? 'error' : version.state.toLowerCase();
  return (
    <span
      className={`${CLASS}-badge ${CLASS}-badge-${kind}`}
      title={version.errorMessage || undefined}
    >
      {version.state === 'LOADING' && (
        <span className={`${CLASS}-spinner ${CLASS}-spinner-small`} />
      )}
      {text}
    </span>
  );
}
