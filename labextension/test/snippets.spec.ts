import { execFileSync } from 'child_process';

import { parseInfo, parseModels } from '../src/model';
import {
  exampleInstances,
  IEndpoint,
  pyLiteral,
  snippet
} from '../src/snippets';
import * as fixtures from './fixtures';

const endpoint: IEndpoint = {
  origin: 'http://localhost:8888',
  baseUrl: '/user/me/',
  host: 'localhost'
};
const [hpt] = parseModels({ models: [fixtures.halfPlusTwo] });
const [multi] = parseModels({ models: [fixtures.multiIo] });
const info = parseInfo(fixtures.info);
const jupyterOnly = parseInfo({
  ...fixtures.info,
  ports: { rest_port: 0, grpc_port: 0 }
});

/** Python's own parser says whether a snippet is valid Python. */
function assertPython(source: string): void {
  execFileSync(
    'python3',
    ['-c', 'import ast, sys; ast.parse(sys.stdin.read())'],
    {
      input: source
    }
  );
}

describe('snippets', () => {
  it('builds one example row that fits the signature', () => {
    expect(exampleInstances(hpt.versions[0].signatures[0])).toEqual([[0]]);
    expect(exampleInstances(multi.versions[0].signatures[0])).toEqual([
      { a: [0, 0], flag: false }
    ]);
  });

  it('curls the standalone REST port when there is one', () => {
    expect(snippet('curl', hpt, info, endpoint)).toBe(
      `curl -X POST -H "Authorization: token $(tfserve token)" -d '{"instances":[[0]]}' 'http://localhost:8501/v1/models/half_plus_two:predict'\n`
    );
  });

  it('quotes what it puts into the shell line, whatever the model is called', () => {
    const hostile = { ...hpt, name: "x';id;'" };
    const curl = snippet('curl', hostile, info, endpoint);
    const words = execFileSync(
      'python3',
      ['-c', 'import shlex, sys; print(shlex.split(sys.stdin.read())[-1])'],
      {
        input: curl
      }
    )
      .toString()
      .trim();
    expect(words).toBe(
      `http://localhost:8501/v1/models/${encodeURIComponent("x';id;'")}:predict`
    );
  });

  it('goes through Jupyter, with its token, when the REST port is off', () => {
    const curl = snippet('curl', hpt, jupyterOnly, endpoint);
    expect(curl).toContain('-H "Authorization: token $(tfserve token)"');
    expect(curl).toContain(
      'http://localhost:8888/user/me/tfserve/v1/models/half_plus_two:predict'
    );
    const python = snippet('python', hpt, jupyterOnly, endpoint);
    expect(python).toContain(
      'token = subprocess.check_output(["tfserve", "token"], text=True).strip()'
    );
    expect(python).toContain('headers={"Authorization": "token " + token}');
    assertPython(python);
  });

  it('writes valid Python for requests and gRPC', () => {
    for (const model of [hpt, multi]) {
      assertPython(snippet('python', model, info, endpoint));
      assertPython(snippet('grpc', model, info, endpoint));
    }
    const grpc = snippet('grpc', multi, info, endpoint);
    expect(grpc).toContain('grpc.insecure_channel("localhost:8500")');
    expect(grpc).toContain('metadata=[("authorization", "token " + token)]');
    expect(grpc).toContain(
      'request.inputs["flag"].CopyFrom(tf.make_tensor_proto([False], dtype=tf.bool))'
    );
    expect(grpc).toContain(
      'request.inputs["a"].CopyFrom(tf.make_tensor_proto([[0, 0]], dtype=tf.float32))'
    );
  });

  it('says so when the gRPC port is off', () => {
    expect(snippet('grpc', hpt, jupyterOnly, endpoint)).toMatch(
      /^# The gRPC port of this server is off/
    );
  });

  it('writes Python literals, not JSON', () => {
    expect(pyLiteral({ a: [true, false], b: 'x"y', c: null })).toBe(
      '{"a": [True, False], "b": "x\\"y", "c": None}'
    );
  });
});
