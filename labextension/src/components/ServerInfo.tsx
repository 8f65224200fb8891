/** Which server answers (embedded or standalone), since when, on which ports, and its warnings. */

import * as React from 'react';

import { formatDuration } from '../format';
import { IServerInfo } from '../model';
import { CLASS } from './css';

export function ServerInfo({
  info
}: {
  info: IServerInfo | null;
}): JSX.Element | null {
  if (!info) {
    return null;
  }
  const port = (value: number | null) => (value ? `:${value}` : 'off');
  return (
    <div className={`${CLASS}-info`}>
      <div>
        {info.embedded ? 'Embedded in Jupyter' : 'Standalone server'}
        {info.version && ` · v${info.version}`}
        {info.uptimeSeconds !== null &&
          ` · up ${formatDuration(info.uptimeSeconds)}`}
      </div>
      <div>
        REST <code>{port(info.restPort)}</code> · gRPC{' '}
        <code>{port(info.grpcPort)}</code>
      </div>
      {info.warnings.map(warning => (
        <div key={warning} className={`${CLASS}-warning`}>
          {warning}
        </div>
      ))}
    </div>
  );
}
