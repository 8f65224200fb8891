/** Which server answers (embedded or standalone), since when, on which ports, and its warnings. */

import * as React from 'react';

import { formatDuration } from '../format';
import { IServerInfo } from '../model';
import { CLASS } from './css';
import { useTranslation } from './translation';

export function ServerInfo({
  info
}: {
  info: IServerInfo | null;
}): JSX.Element | null {
  const trans = useTranslation();
  if (!info) {
    return null;
  }
  const port = (value: number | null) =>
    value ? `:${value}` : trans.__('off');
  return (
    <div className={`${CLASS}-info`}>
      <div>
        {info.embedded
          ? trans.__('Embedded in Jupyter')
          : trans.__('Standalone server')}
        {info.version && ` · v${info.version}`}
        {info.uptimeSeconds !== null &&
          ` · ${trans.__('up %1', formatDuration(info.uptimeSeconds))}`}
      </div>
      <div>
        {trans.__('REST')} <code>{port(info.restPort)}</code> ·{' '}
        {trans.__('gRPC')} <code>{port(info.grpcPort)}</code>
      </div>
      {info.warnings.map(warning => (
        <div key={warning} className={`${CLASS}-warning`}>
          {warning}
        </div>
      ))}
    </div>
  );
}
