import {
  BadResponse,
  isFailed,
  parseBatching,
  parseInfo,
  parseModels,
  servingVersion,
  visibleVersions
} from '../src/model';
import * as fixtures from './fixtures';

describe('parseModels', () => {
  it('reads models, sorted by name, with versions newest first', () => {
    const models = parseModels(fixtures.modelList);
    expect(models.map(m => m.name)).toEqual([
      'big_model',
      'broken',
      'half_plus_two'
    ]);
    const hpt = models[2];
    expect(hpt.versions.map(v => v.version)).toEqual([2, 1]);
    expect(hpt.versions.map(v => v.platform)).toEqual(['tensorflow', '']); // only a loaded version has one
    expect(hpt.labels).toEqual({ stable: 2 });
    expect(hpt.basePath).toBe('/models/half_plus_two');
  });

  it('reads signatures with dtype and shape, serving_default first', () => {
    const [model] = parseModels({ models: [fixtures.multiIo] });
    const sigs = model.versions[0].signatures;
    expect(sigs.map(s => s.key)).toEqual(['serving_default', 'lookup']);
    expect(sigs[0].inputs).toEqual([
      { name: 'a', dtype: 'DT_FLOAT', shape: [-1, 2] },
      { name: 'flag', dtype: 'DT_BOOL', shape: [-1] }
    ]);
    expect(sigs[0].outputs).toEqual([
      { name: 'sum', dtype: 'DT_FLOAT', shape: null }
    ]);
  });

  it('reads whether a model logs its requests, and at what rate', () => {
    const logging = {
      enabled: true,
      sampling_rate: 0.25,
      type: 'tfrecord',
      filename_prefix: '/logs/m'
    };
    const [on] = parseModels({ models: [{ ...fixtures.loading, logging }] });
    expect(on.loggingRate).toBe(0.25);
    const [paused] = parseModels({
      models: [{ ...fixtures.loading, logging: { ...logging, enabled: false } }]
    });
    expect(paused.loggingRate).toBe(0);
    expect(parseModels({ models: [fixtures.loading] })[0].loggingRate).toBe(0); // an older server says nothing
  });

  it('accepts int64 version numbers sent as strings', () => {
    const model = {
      ...fixtures.loading,
      versions: [{ version: '12', state: 'AVAILABLE' }]
    };
    const [parsed] = parseModels({ models: [model] });
    expect(parsed.versions[0].version).toBe(12);
    expect(parsed.versions[0].errorCode).toBe('OK');
  });

  it('refuses answers it cannot use', () => {
    expect(() => parseModels({})).toThrow(BadResponse);
    expect(() => parseModels({ models: [{ versions: [] }] })).toThrow(
      'a model without a name'
    );
    expect(() =>
      parseModels({
        models: [{ name: 'm', versions: [{ state: 'AVAILABLE' }] }]
      })
    ).toThrow('no version number or state');
  });
});

describe('version helpers', () => {
  const [bigModel, broken, hpt] = parseModels(fixtures.modelList);

  it('finds the version that serves', () => {
    expect(servingVersion(hpt)?.version).toBe(2);
    expect(servingVersion(bigModel)).toBeUndefined();
  });

  it('marks versions with an error as failed', () => {
    expect(isFailed(broken.versions[0])).toBe(true);
    expect(isFailed(hpt.versions[0])).toBe(false);
  });

  it('hides cleanly ended versions but keeps failed ones', () => {
    expect(visibleVersions(hpt).map(v => v.version)).toEqual([2]);
    expect(visibleVersions(broken).map(v => v.version)).toEqual([3]);
  });
});

describe('parseInfo', () => {
  it('reads ports, the host and whether requests are batched', () => {
    const info = parseInfo(fixtures.info);
    expect(info).toMatchObject({
      embedded: true,
      restPort: 8501,
      grpcPort: 8500,
      version: '0.1.0',
      uptimeSeconds: 125,
      batching: true
    });
    expect(info.warnings).toEqual([]);
  });

  it('treats port 0 as closed and shows startup problems as warnings', () => {
    const info = parseInfo({
      ...fixtures.info,
      host: 'standalone',
      ports: { grpc: 8500, rest: 0 },
      port_errors: { rest: 'port 8501 is in use' },
      config_error: 'Illegal to list model m multiple times in config list'
    });
    expect(info.embedded).toBe(false);
    expect(info.restPort).toBeNull();
    expect(info.warnings).toEqual([
      'rest: port 8501 is in use',
      'config: Illegal to list model m multiple times in config list'
    ]);
  });
});

describe('parseBatching', () => {
  it('adds up the signatures of a model', () => {
    const twoSignatures = {
      ...fixtures.batching,
      signatures: {
        ...fixtures.batching.signatures,
        other: {
          ...fixtures.batching.signatures.serving_default,
          batches: 10,
          rows: 80,
          queued_rows: 1
        }
      }
    };
    expect(parseBatching(fixtures.batching)).toEqual({
      avgBatchSize: 4,
      queueDepth: 3
    });
    expect(parseBatching(twoSignatures)).toEqual({
      avgBatchSize: 5,
      queueDepth: 4
    });
  });

  it('knows no numbers for a model served without batching', () => {
    expect(parseBatching({ model_name: 'm', signatures: {} })).toEqual({});
  });
});
