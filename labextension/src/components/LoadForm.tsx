/**
 * Load a model by name, from a base path (empty: the server's models root)
 * with a version policy; the form checks the version numbers before it asks.
 */

import { Button, HTMLSelect } from '@jupyterlab/ui-components';
import * as React from 'react';

import { VersionPolicy } from '../api';
import { IMessage } from '../store';
import { IViewActions } from './actions';
import { CLASS } from './css';
import { Message } from './Message';
import { useTranslation } from './translation';

/** TF Serving's names of the version policies, shown as a model config file writes them. */
const POLICY_KINDS = ['latest', 'all', 'specific'];

export function LoadForm({
  modelsRoot,
  pending,
  message,
  actions
}: {
  modelsRoot: string;
  pending: boolean;
  message: IMessage | undefined;
  actions: IViewActions;
}): JSX.Element {
  const trans = useTranslation();
  const [name, setName] = React.useState('');
  const [basePath, setBasePath] = React.useState('');
  const [policy, setPolicy] = React.useState('latest');
  const [count, setCount] = React.useState('1');
  const versions = count
    .split(/[\s,]+/)
    .filter(Boolean)
    .map(Number);
  const countValid =
    versions.length > 0 &&
    versions.every(
      n => Number.isInteger(n) && n >= (policy === 'latest' ? 1 : 0)
    );
  const valid = name.trim() !== '' && (policy === 'all' || countValid);
  const submit = (event: React.FormEvent) => {
    event.preventDefault();
    if (!valid) {
      return;
    }
    const chosen: VersionPolicy =
      policy === 'all'
        ? { all: {} }
        : policy === 'specific'
          ? { specific: { versions } }
          : { latest: { num_versions: versions[0] } };
    actions.load(name.trim(), basePath.trim(), chosen);
  };
  return (
    <details className={`${CLASS}-load`}>
      <summary>{trans.__('Load a model')}</summary>
      <form onSubmit={submit}>
        <label>
          {trans.__('Name')}
          <input
            className="jp-mod-styled"
            value={name}
            onChange={event => setName(event.target.value)}
            placeholder={trans.__('my_model')}
          />
        </label>
        <label>
          {trans.__('Base path')}
          <input
            className="jp-mod-styled"
            value={basePath}
            onChange={event => setBasePath(event.target.value)}
            placeholder={
              modelsRoot
                ? `${modelsRoot}/${name.trim() || '<name>'}`
                : trans.__('a directory of version directories')
            }
          />
        </label>
        <div className={`${CLASS}-policy`}>
          <HTMLSelect
            aria-label={trans.__('Version policy')}
            value={policy}
            onChange={event => setPolicy(event.target.value)}
            options={POLICY_KINDS.map(kind => ({ label: kind, value: kind }))}
          />
          {policy !== 'all' && (
            <input
              className="jp-mod-styled"
              aria-label={
                policy === 'latest'
                  ? trans.__('Number of versions')
                  : trans.__('Versions')
              }
              value={count}
              onChange={event => setCount(event.target.value)}
              placeholder={policy === 'latest' ? '1' : '1, 2'}
            />
          )}
        </div>
        <Button
          type="submit"
          small
          className={`${CLASS}-primary`}
          disabled={pending || !valid}
        >
          {pending ? trans.__('Loading…') : trans.__('Load')}
        </Button>
        <Message scope="load" message={message} actions={actions} />
      </form>
    </details>
  );
}
