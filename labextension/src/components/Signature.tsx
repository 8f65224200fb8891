/**
 * One signature's inputs and outputs: names, dtypes and shapes, which is
 * what a client needs to build a request. `serving_default` starts open.
 */

import * as React from 'react';

import { formatDtype, formatShape } from '../format';
import { ISignatureInfo, ITensorInfo } from '../model';
import { CLASS } from './css';
import { useTranslation } from './translation';

export function Signature({
  signature
}: {
  signature: ISignatureInfo;
}): JSX.Element {
  const trans = useTranslation();
  return (
    <details
      className={`${CLASS}-signature`}
      open={signature.key === 'serving_default'}
    >
      <summary>
        {trans.__('signature')} <code>{signature.key}</code>
      </summary>
      <table>
        <tbody>
          <TensorRows kind="in" tensors={signature.inputs} />
          <TensorRows kind="out" tensors={signature.outputs} />
        </tbody>
      </table>
    </details>
  );
}

function TensorRows({
  kind,
  tensors
}: {
  kind: string;
  tensors: ITensorInfo[];
}): JSX.Element {
  return (
    <>
      {tensors.map(t => (
        <tr key={`${kind}:${t.name}`} data-tensor={`${kind}:${t.name}`}>
          <td className={`${CLASS}-muted`}>{kind}</td>
          <td>{t.name}</td>
          <td>{formatDtype(t.dtype)}</td>
          <td>{formatShape(t.shape)}</td>
        </tr>
      ))}
    </>
  );
}
