/**
 * Ready-to-paste client code for one model: curl, Python `requests`, gRPC.
 *
 * Each snippet sends one example that fits the model's serving signature
 * (zeros of the right dtype and shape, one row), so it runs as pasted. REST
 * snippets use the standalone TF-Serving-compatible port when the server has
 * one, and otherwise the API mounted in Jupyter; both need Jupyter's token,
 * which the snippets never contain: they ask `tfserve token` for it when they
 * run (the token would otherwise end up in clipboards, chats and saved
 * notebooks). Everything put into a shell line is quoted as one word.
 */

import {
  IModelInfo,
  IServerInfo,
  ISignatureInfo,
  ITensorInfo,
  servingVersion
} from './model';

export type SnippetKind = 'curl' | 'python' | 'grpc';

export const SNIPPET_LABELS: { [kind in SnippetKind]: string } = {
  curl: 'curl',
  python: 'Python requests',
  grpc: 'Python gRPC'
};

export interface IEndpoint {
  /** Origin of the Jupyter page, e.g. `http://localhost:8888`. */
  origin: string;
  /** Jupyter's base URL, e.g. `/` or `/user/me/`. */
  baseUrl: string;
  /** Hostname the standalone ports are reached on from the user's machine. */
  host: string;
}

const INTEGER = /^DT_U?INT/;

/** Python that reads the token when the snippet runs, from the same command the curl line uses. */
const READ_TOKEN =
  'token = subprocess.check_output(["tfserve", "token"], text=True).strip()';

/** A zero of the dtype, as TF Serving's JSON expects it. */
function zero(dtype: string): unknown {
  if (dtype === 'DT_STRING') {
    return '';
  }
  if (dtype === 'DT_BOOL') {
    return false;
  }
  return INTEGER.test(dtype) ? 0 : 0.0;
}

/** One row of the tensor: its shape without the batch dimension, unknown sizes taken as 1. */
function exampleRow(tensor: ITensorInfo): unknown {
  const dims = (tensor.shape ?? [-1]).slice(1).map(d => (d < 0 ? 1 : d));
  const build = (level: number): unknown =>
    level === dims.length
      ? zero(tensor.dtype)
      : Array.from({ length: dims[level] }, () => build(level + 1));
  return build(0);
}

function defaultSignature(model: IModelInfo): ISignatureInfo | undefined {
  return servingVersion(model)?.signatures[0];
}

/** The `instances` of a row-format predict request for the signature. */
export function exampleInstances(
  signature: ISignatureInfo | undefined
): unknown[] {
  if (!signature || signature.inputs.length === 0) {
    return [1.0];
  }
  if (signature.inputs.length === 1) {
    return [exampleRow(signature.inputs[0])];
  }
  const row: { [name: string]: unknown } = {};
  for (const input of signature.inputs) {
    row[input.name] = exampleRow(input);
  }
  return [row];
}

function predictBody(signature: ISignatureInfo | undefined): {
  [key: string]: unknown;
} {
  const body: { [key: string]: unknown } = {
    instances: exampleInstances(signature)
  };
  if (signature && signature.key !== 'serving_default') {
    body.signature_name = signature.key;
  }
  return body;
}

/** Where REST requests go, and the header they need. */
function restTarget(
  model: IModelInfo,
  info: IServerInfo | null,
  endpoint: IEndpoint
) {
  const path = `v1/models/${encodeURIComponent(model.name)}:predict`;
  if (info?.restPort) {
    // The extension's standalone ports need Jupyter's token too (c.TFServe.ports_require_token).
    return {
      url: `http://${endpoint.host}:${info.restPort}/${path}`,
      token: true
    };
  }
  const base = endpoint.baseUrl.endsWith('/')
    ? endpoint.baseUrl
    : `${endpoint.baseUrl}/`;
  return { url: `${endpoint.origin}${base}tfserve/${path}`, token: true };
}

/** One shell word, whatever it holds: single quotes, with each `'` written as `'"'"'`. */
export function shellQuote(value: string): string {
  return `'${value.replace(/'/g, `'"'"'`)}'`;
}

function pyString(value: string): string {
  return JSON.stringify(value);
}

/** A JSON value written as a Python literal (`True`/`False`, not `true`/`false`). */
export function pyLiteral(value: unknown): string {
  if (Array.isArray(value)) {
    return `[${value.map(pyLiteral).join(', ')}]`;
  }
  if (typeof value === 'object' && value !== null) {
    const items = Object.entries(value).map(
      ([k, v]) => `${pyString(k)}: ${pyLiteral(v)}`
    );
    return `{${items.join(', ')}}`;
  }
  if (typeof value === 'boolean') {
    return value ? 'True' : 'False';
  }
  if (typeof value === 'string') {
    return pyString(value);
  }
  return value === null || value === undefined ? 'None' : JSON.stringify(value);
}

const NUMPY_DTYPES: { [dtype: string]: string } = {
  DT_FLOAT: 'tf.float32',
  DT_DOUBLE: 'tf.float64',
  DT_HALF: 'tf.float16',
  DT_INT8: 'tf.int8',
  DT_INT16: 'tf.int16',
  DT_INT32: 'tf.int32',
  DT_INT64: 'tf.int64',
  DT_UINT8: 'tf.uint8',
  DT_UINT16: 'tf.uint16',
  DT_UINT32: 'tf.uint32',
  DT_UINT64: 'tf.uint64',
  DT_STRING: 'tf.string',
  DT_BOOL: 'tf.bool'
};

export function snippet(
  kind: SnippetKind,
  model: IModelInfo,
  info: IServerInfo | null,
  endpoint: IEndpoint
): string {
  const signature = defaultSignature(model);
  switch (kind) {
    case 'curl': {
      const target = restTarget(model, info, endpoint);
      const auth = target.token
        ? ` -H "Authorization: token $(tfserve token)"`
        : '';
      return `curl -X POST${auth} -d ${shellQuote(JSON.stringify(predictBody(signature)))} ${shellQuote(target.url)}\n`;
    }
    case 'python': {
      const target = restTarget(model, info, endpoint);
      const lines = target.token ? ['import subprocess', ''] : [];
      lines.push('import requests', '');
      if (target.token) {
        lines.push(READ_TOKEN, '');
      }
      lines.push(`response = requests.post(`, `    ${pyString(target.url)},`);
      lines.push(`    json=${pyLiteral(predictBody(signature))},`);
      if (target.token) {
        lines.push('    headers={"Authorization": "token " + token},');
      }
      lines.push(
        '    timeout=30,',
        ')',
        'response.raise_for_status()',
        'print(response.json())'
      );
      return lines.join('\n') + '\n';
    }
    case 'grpc':
      return grpcSnippet(model, signature, info, endpoint);
  }
}

function grpcSnippet(
  model: IModelInfo,
  signature: ISignatureInfo | undefined,
  info: IServerInfo | null,
  endpoint: IEndpoint
): string {
  const lines: string[] = [];
  if (!info?.grpcPort) {
    lines.push(
      '# The gRPC port of this server is off: start it with c.TFServe.grpc_port.'
    );
  }
  lines.push(
    'import subprocess',
    '',
    'import grpc',
    'import tensorflow as tf',
    'from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc',
    '',
    READ_TOKEN,
    `channel = grpc.insecure_channel("${endpoint.host}:${info?.grpcPort ?? 8500}")`,
    'stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)',
    'request = predict_pb2.PredictRequest()',
    `request.model_spec.name = ${pyString(model.name)}`,
    `request.model_spec.signature_name = ${pyString(signature?.key ?? 'serving_default')}`
  );
  for (const input of signature?.inputs ?? []) {
    const value = pyLiteral([exampleRow(input)]);
    const dtype = NUMPY_DTYPES[input.dtype];
    const args = dtype ? `${value}, dtype=${dtype}` : value;
    lines.push(
      `request.inputs[${pyString(input.name)}].CopyFrom(tf.make_tensor_proto(${args}))`
    );
  }
  // The extension's gRPC port wants Jupyter's token too (c.TFServe.ports_require_token).
  lines.push(
    'print(stub.Predict(request, timeout=30.0, metadata=[("authorization", "token " + token)]))'
  );
  return lines.join('\n') + '\n';
}
