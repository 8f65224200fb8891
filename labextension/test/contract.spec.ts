/**
 * The fixtures the other tests use are what the server really sends: each one
 * is checked against the management API's OpenAPI spec, which the server's
 * own tests check the handlers against. So is every request body the panel
 * sends.
 */
import Ajv, { ValidateFunction } from 'ajv';
import * as fs from 'fs';
import * as yaml from 'js-yaml';
import * as path from 'path';

import { ILoadRequest } from '../src/api';
import * as fixtures from './fixtures';

const SPEC = path.resolve(
  __dirname,
  '..',
  '..',
  'jupyter_tfserve',
  'protocols',
  'openapi.yaml'
);

describe('fixtures match the OpenAPI spec of the management API', () => {
  const spec = yaml.safeLoad(fs.readFileSync(SPEC, 'utf8')) as any;
  const ajv = new Ajv({ strict: false, allErrors: true });
  ajv.addSchema(spec, 'openapi');

  /** Where `pointer` leads in the spec, following the `$ref`s on the way (shared responses). */
  const resolve = (pointer: string): string => {
    let node = spec;
    let at = '';
    for (const segment of pointer.split('/').slice(1)) {
      if (node && typeof node.$ref === 'string') {
        at = node.$ref.slice(1);
        node = resolveRef(at);
      }
      node = node?.[segment.replace(/~1/g, '/').replace(/~0/g, '~')];
      at = `${at}/${segment}`;
    }
    if (node === undefined) {
      throw new Error(`nothing at ${pointer} in ${SPEC}`);
    }
    return at;
  };
  const resolveRef = (pointer: string): any =>
    pointer
      .split('/')
      .slice(1)
      .reduce(
        (node, segment) =>
          node?.[segment.replace(/~1/g, '/').replace(/~0/g, '~')],
        spec
      );

  /** The validator of a schema in the spec, by JSON pointer. */
  const schema = (pointer: string): ValidateFunction => {
    const validate = ajv.getSchema(`openapi#${resolve(pointer)}`);
    if (!validate) {
      throw new Error(`no schema at ${pointer} in ${SPEC}`);
    }
    return validate;
  };
  const response = (route: string, method: string, status = '200') =>
    schema(
      `/paths/${route.replace(/\//g, '~1')}/${method}/responses/${status}/content/application~1json/schema`
    );
  const requestBody = (route: string, method: string) =>
    schema(
      `/paths/${route.replace(/\//g, '~1')}/${method}/requestBody/content/application~1json/schema`
    );
  const expectValid = (validate: ValidateFunction, value: unknown) => {
    const valid = validate(value);
    expect(validate.errors ?? []).toEqual([]);
    expect(valid).toBe(true);
  };

  it('GET models', () => {
    expectValid(response('/models', 'get'), fixtures.modelList);
    expectValid(response('/models', 'get'), { models: [fixtures.multiIo] });
  });

  it('GET info', () => {
    expectValid(schema('/components/schemas/Info'), fixtures.info);
  });

  it('GET models/{name}/batching', () => {
    expectValid(response('/models/{name}/batching', 'get'), fixtures.batching);
  });

  it('GET metrics', () => {
    expectValid(response('/metrics', 'get'), fixtures.metrics(40));
  });

  it('the fixtures would fail a wrong shape', () => {
    const validate = response('/models', 'get');
    expect(
      validate({
        models: [{ ...fixtures.halfPlusTwo, versions: [{ version: '2' }] }]
      })
    ).toBe(false);
  });

  it('request bodies the panel sends', () => {
    const loads: ILoadRequest[] = [
      {
        name: 'm',
        base_path: '/models/m',
        policy: { latest: { num_versions: 2 } }
      },
      { name: 'm', base_path: '/models/m', policy: { all: {} } },
      {
        name: 'm',
        base_path: '/models/m',
        policy: { specific: { versions: [1, 3] } }
      }
    ];
    for (const load of loads) {
      expectValid(requestBody('/models', 'post'), load);
    }
    expectValid(requestBody('/models/{name}/labels/{label}', 'put'), {
      version: 3
    });
    expectValid(requestBody('/models/{name}/rollback', 'post'), {});
    expectValid(requestBody('/config/reload', 'post'), {});
  });
});
