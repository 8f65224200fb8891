/**
 * What the management API says, as typed values.
 *
 * The JSON is parsed here and only here, so the rest of the panel never sees
 * a raw response. Parsing is strict about what the panel cannot do without
 * (a model needs a name, a version needs a number and a state) and lenient
 * about the rest: a field the server does not send is `undefined`, and the
 * view shows a dash. A response the panel cannot use at all raises
 * `BadResponse`, which the panel reports like any other failed request.
 */

/** One tensor of a signature. `shape` is `null` when the rank is unknown; -1 marks an unknown size. */
export interface ITensorInfo {
  name: string;
  dtype: string;
  shape: number[] | null;
}

export interface ISignatureInfo {
  key: string;
  methodName: string;
  inputs: ITensorInfo[];
  outputs: ITensorInfo[];
}

/** TF Serving's version states; anything else the server sends is kept as is. */
export type VersionState =
  'START' | 'LOADING' | 'AVAILABLE' | 'UNLOADING' | 'END' | string;

export interface IVersionInfo {
  version: number;
  state: VersionState;
  /** `OK` when the version is healthy, else a TF Serving status code name. */
  errorCode: string;
  errorMessage: string;
  path: string;
  /** The platform serving the version (`tensorflow`, `tflite`, a plug-in's name); empty unless loaded. */
  platform: string;
  signatures: ISignatureInfo[];
}

export interface IModelInfo {
  name: string;
  basePath: string;
  platform: string;
  labels: { [label: string]: number };
  /** The version policy as users write it: `latest:2`, `all`, `specific:3`. */
  policy: string;
  /** Why the model's base path could not be read (missing directory, no versions). */
  sourceError: string;
  /** The share of requests written to the model's request log (0: not logging). */
  loggingRate: number;
  versions: IVersionInfo[];
}

/** Where the model server can be reached, and how it runs. */
export interface IServerInfo {
  embedded: boolean;
  restPort: number | null;
  grpcPort: number | null;
  version: string;
  uptimeSeconds: number | null;
  /** Whether requests are batched (only then are there batch sizes and queues to show). */
  batching: boolean;
  /** The model config file "Reload config" re-reads; empty when the server has none. */
  modelConfigFile: string;
  /** Where a load without a base path looks: `{modelsRoot}/{name}`. */
  modelsRoot: string;
  /** Errors the server met at startup (a taken port, a bad config), shown as warnings. */
  warnings: string[];
}

/** Live numbers for one model; a number the server does not report is `undefined`. */
export interface IModelStats {
  requestsPerSecond?: number;
  p50Ms?: number;
  p99Ms?: number;
  avgBatchSize?: number;
  queueDepth?: number;
}

/** A response body the panel cannot make sense of. */
export class BadResponse extends Error {
  constructor(what: string) {
    super(`Unexpected response from the TF Serving server extension: ${what}`);
    this.name = 'BadResponse';
  }
}

type Json = { [key: string]: unknown };

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function str(value: unknown, fallback = ''): string {
  return typeof value === 'string' ? value : fallback;
}

function num(value: unknown): number | undefined {
  if (typeof value === 'number' && Number.isFinite(value)) {
    return value;
  }
  // int64 values travel as strings in TF Serving's JSON.
  if (
    typeof value === 'string' &&
    value.trim() !== '' &&
    Number.isFinite(Number(value))
  ) {
    return Number(value);
  }
  return undefined;
}

function port(value: unknown): number | null {
  const n = num(value);
  return n !== undefined && n > 0 ? n : null;
}

function parseTensors(value: unknown): ITensorInfo[] {
  if (!isObject(value)) {
    return [];
  }
  return Object.keys(value)
    .sort()
    .map(name => {
      const spec = isObject(value[name]) ? (value[name] as Json) : {};
      const shape = Array.isArray(spec.shape)
        ? spec.shape.map(d => num(d) ?? -1)
        : null;
      return { name, dtype: str(spec.dtype, 'DT_INVALID'), shape };
    });
}

/** Signatures by key, `serving_default` first (it is the one clients call). */
export function parseSignatures(value: unknown): ISignatureInfo[] {
  if (!isObject(value)) {
    return [];
  }
  const keys = Object.keys(value).sort((a, b) =>
    a === 'serving_default'
      ? -1
      : b === 'serving_default'
        ? 1
        : a.localeCompare(b)
  );
  return keys.map(key => {
    const sig = isObject(value[key]) ? (value[key] as Json) : {};
    return {
      key,
      methodName: str(sig.method_name),
      inputs: parseTensors(sig.inputs),
      outputs: parseTensors(sig.outputs)
    };
  });
}

function parseVersion(value: unknown, model: string): IVersionInfo {
  const v = isObject(value) ? value : {};
  const version = num(v.version);
  const state = str(v.state);
  if (version === undefined || !state) {
    throw new BadResponse(
      `a version of model "${model}" has no version number or state`
    );
  }
  return {
    version,
    state,
    errorCode: str(v.error_code, 'OK'),
    errorMessage: str(v.error_message),
    path: str(v.path),
    platform: str(v.platform),
    signatures: parseSignatures(v.signatures)
  };
}

export function parseModel(value: unknown): IModelInfo {
  if (!isObject(value) || !str(value.name)) {
    throw new BadResponse('a model without a name');
  }
  const name = str(value.name);
  const labels: { [label: string]: number } = {};
  if (isObject(value.labels)) {
    for (const [label, version] of Object.entries(value.labels)) {
      const n = num(version);
      if (n !== undefined) {
        labels[label] = n;
      }
    }
  }
  const versions = Array.isArray(value.versions)
    ? value.versions.map(v => parseVersion(v, name))
    : [];
  // Newest first: that is the version that serves "latest".
  versions.sort((a, b) => b.version - a.version);
  return {
    name,
    basePath: str(value.base_path),
    platform: str(value.platform, 'tensorflow'),
    labels,
    policy: policyText(value.policy),
    sourceError: str(value.source_error),
    loggingRate:
      isObject(value.logging) && value.logging.enabled === true
        ? (num(value.logging.sampling_rate) ?? 0)
        : 0,
    versions
  };
}

/** `GET api/models`: `{"models": [...]}`, sorted by name. */
export function parseModels(body: unknown): IModelInfo[] {
  if (!isObject(body) || !Array.isArray(body.models)) {
    throw new BadResponse('the model list has no "models" array');
  }
  return body.models
    .map(parseModel)
    .sort((a, b) => a.name.localeCompare(b.name));
}

/** `GET api/info`. */
export function parseInfo(body: unknown): IServerInfo {
  if (!isObject(body)) {
    throw new BadResponse('the server info is not an object');
  }
  const ports = isObject(body.ports) ? body.ports : {};
  const warnings: string[] = [];
  if (isObject(body.port_errors)) {
    for (const [endpoint, message] of Object.entries(body.port_errors)) {
      if (typeof message === 'string' && message) {
        warnings.push(`${endpoint}: ${message}`);
      }
    }
  }
  if (str(body.config_error)) {
    warnings.push(`config: ${str(body.config_error)}`);
  }
  return {
    embedded: str(body.host) === 'jupyter',
    restPort: port(ports.rest),
    grpcPort: port(ports.grpc),
    version: str(body.version),
    uptimeSeconds: num(body.uptime_seconds) ?? null,
    batching: body.batching === true,
    modelConfigFile: str(body.model_config_file),
    modelsRoot: str(body.models_root),
    warnings
  };
}

/**
 * `GET api/models/{name}/batching`: how batching goes for the model.
 *
 * The scheduler reports per signature; the panel shows the model as a whole:
 * the batch size is rows over batches, the queue depth the rows waiting in
 * all of the model's queues. A model served without batching has no
 * signatures here, and these numbers stay unknown.
 */
export function parseBatching(
  body: unknown
): Pick<IModelStats, 'avgBatchSize' | 'queueDepth'> {
  if (!isObject(body)) {
    throw new BadResponse('the batching statistics are not an object');
  }
  const signatures = (
    isObject(body.signatures) ? Object.values(body.signatures) : []
  ).filter(isObject);
  if (signatures.length === 0) {
    return {};
  }
  const total = (field: string) =>
    signatures.reduce((sum, s) => sum + (num(s[field]) ?? 0), 0);
  const batches = total('batches');
  return {
    avgBatchSize: batches > 0 ? total('rows') / batches : undefined,
    queueDepth: total('queued_rows')
  };
}

/**
 * `latest:2`, `all` or `specific:1,3` for TF Serving's `ServableVersionPolicy` in JSON
 * (no policy is TF Serving's default, `latest:1`), as `%tfserve` and `tfserve` spell it.
 */
export function policyText(policy: unknown): string {
  if (!isObject(policy) || Object.keys(policy).length === 0) {
    return 'latest:1';
  }
  if (isObject(policy.latest)) {
    return `latest:${num(policy.latest.num_versions) ?? 1}`;
  }
  if (isObject(policy.specific)) {
    const versions = Array.isArray(policy.specific.versions)
      ? policy.specific.versions
      : [];
    return `specific:${versions
      .map(v => num(v))
      .filter(v => v !== undefined)
      .join(',')}`;
  }
  return 'all' in policy ? 'all' : 'latest:1';
}

/** A policy that pins versions (as a rollback does): "serve latest" undoes it. */
export function isPinned(model: IModelInfo): boolean {
  return model.policy.startsWith('specific:');
}

/** Labels whose version does not answer now: requests naming them fail. */
export function unavailableLabels(model: IModelInfo): string[] {
  const available = new Set(
    model.versions.filter(v => v.state === 'AVAILABLE').map(v => v.version)
  );
  return Object.keys(model.labels)
    .filter(label => !available.has(model.labels[label]))
    .sort();
}

/** The version "latest" resolves to: the newest AVAILABLE one. */
export function servingVersion(model: IModelInfo): IVersionInfo | undefined {
  return model.versions.find(v => v.state === 'AVAILABLE');
}

/** A version failed when the server reports an error for it. */
export function isFailed(version: IVersionInfo): boolean {
  return (
    version.errorCode !== 'OK' ||
    (version.state === 'END' && !!version.errorMessage)
  );
}

/** Versions worth showing: every live one, and ended ones only when they carry an error. */
export function visibleVersions(model: IModelInfo): IVersionInfo[] {
  return model.versions.filter(v => v.state !== 'END' || isFailed(v));
}
