/**
 * Management API answers, in the shapes `jupyter_tfserve/protocols/management.py`
 * produces (see `jupyter_tfserve/protocols/openapi.yaml`; `contract.spec.ts`
 * checks these against that spec).
 */

export const halfPlusTwo = {
  name: 'half_plus_two',
  base_path: '/models/half_plus_two',
  platform: 'tensorflow',
  policy: { latest: { num_versions: 1 } },
  labels: { stable: 2 },
  source_error: '',
  versions: [
    {
      version: 2,
      state: 'AVAILABLE',
      error_code: 'OK',
      error_message: '',
      path: '/models/half_plus_two/2',
      platform: 'tensorflow',
      loader: 'tf2',
      signatures: {
        serving_default: {
          method_name: 'tensorflow/serving/predict',
          inputs: { x: { dtype: 'DT_FLOAT', shape: [-1, 1] } },
          outputs: { y: { dtype: 'DT_FLOAT', shape: [-1, 1] } }
        }
      }
    },
    {
      version: 1,
      state: 'END',
      error_code: 'OK',
      error_message: '',
      path: '/models/half_plus_two/1'
    }
  ]
};

export const broken = {
  name: 'broken',
  base_path: '/models/broken',
  platform: 'tensorflow',
  policy: { latest: { num_versions: 1 } },
  labels: {},
  source_error: '',
  versions: [
    {
      version: 3,
      state: 'END',
      error_code: 'INVALID_ARGUMENT',
      error_message: 'SavedModel file does not exist at: /models/broken/3',
      path: '/models/broken/3'
    }
  ]
};

export const loading = {
  name: 'big_model',
  base_path: '/models/big_model',
  platform: 'tensorflow',
  policy: { latest: { num_versions: 1 } },
  labels: {},
  source_error: '',
  versions: [
    {
      version: 7,
      state: 'LOADING',
      error_code: 'OK',
      error_message: '',
      path: '/models/big_model/7'
    }
  ]
};

export const multiIo = {
  name: 'multi_io',
  base_path: '/models/multi_io',
  platform: 'tensorflow',
  policy: { latest: { num_versions: 1 } },
  labels: {},
  source_error: '',
  versions: [
    {
      version: 1,
      state: 'AVAILABLE',
      error_code: 'OK',
      error_message: '',
      path: '/models/multi_io/1',
      loader: 'tf2',
      signatures: {
        lookup: {
          method_name: 'tensorflow/serving/predict',
          inputs: { key: { dtype: 'DT_STRING', shape: [-1] } },
          outputs: { value: { dtype: 'DT_INT64', shape: [-1] } }
        },
        serving_default: {
          method_name: 'tensorflow/serving/predict',
          inputs: {
            a: { dtype: 'DT_FLOAT', shape: [-1, 2] },
            flag: { dtype: 'DT_BOOL', shape: [-1] }
          },
          outputs: { sum: { dtype: 'DT_FLOAT', shape: null } }
        }
      }
    }
  ]
};

export const modelList = { models: [halfPlusTwo, broken, loading] };

export const info = {
  version: '0.1.0',
  host: 'jupyter',
  pid: 4242,
  started_at: 1795320000,
  uptime_seconds: 125,
  ports: { grpc: 8500, rest: 8501 },
  bind_host: '127.0.0.1',
  models: 3,
  ready: false,
  batching: true,
  model_config_file: '',
  models_root: '/models',
  allowed_model_roots: [],
  tensorflow: { imported: true, version: '2.21.0' },
  port_errors: {},
  config_error: ''
};

/** Latency buckets as the server exports them: 10 * 1.8^i microseconds. */
export const latencyBounds = Array.from(
  { length: 33 },
  (_, i) => 10 * 1.8 ** i
);

/** `GET api/metrics` with `requests` requests of half_plus_two, split over REST and gRPC. */
export function metrics(requests: number, bucket = 10) {
  const counts = (n: number) =>
    latencyBounds.map((_, i) => (i === bucket ? n : 0));
  const rest = Math.floor(requests / 2);
  const grpc = requests - rest;
  return {
    ':tensorflow:serving:request_count': [
      {
        labels: { model_name: 'half_plus_two', status: 'OK' },
        value: requests - 1
      },
      {
        labels: { model_name: 'half_plus_two', status: 'INVALID_ARGUMENT' },
        value: 1
      }
    ],
    ':tensorflow:serving:request_latency': [
      {
        labels: {
          model_name: 'half_plus_two',
          API: 'predict',
          entrypoint: 'REST'
        },
        buckets: latencyBounds,
        counts: counts(rest),
        sum: rest * 500,
        count: rest
      },
      {
        labels: {
          model_name: 'half_plus_two',
          API: 'Predict',
          entrypoint: 'GRPC'
        },
        buckets: latencyBounds,
        counts: counts(grpc),
        sum: grpc * 500,
        count: grpc
      }
    ],
    ':tensorflow:cc:saved_model:load_attempt_count': [
      {
        labels: { model_path: '/models/half_plus_two/2', status: 'success' },
        value: 1
      }
    ]
  };
}

/** One signature's batching statistics, as the scheduler reports them. */
function signatureStats(
  requestsPerSecond: number,
  batches: number,
  rows: number,
  queued: number
) {
  const summary = (p50: number, p99: number) => ({
    count: batches,
    mean: p50,
    p50,
    p90: p99,
    p99,
    max: p99
  });
  return {
    batches,
    requests: rows,
    rows,
    padding_rows: 0,
    padding_ratio: 0,
    average_batch_size: rows / batches,
    average_requests_per_batch: rows / batches,
    batch_size_histogram: { '4': batches },
    close_reasons: { full: batches },
    queue_wait_ms: summary(0.5, 2.0),
    execution_ms: summary(1.5, 6.0),
    rows_per_second: requestsPerSecond,
    requests_per_second: requestsPerSecond,
    rate_window_seconds: 10,
    reruns_alone: 0,
    queued_rows: queued
  };
}

export const batching = {
  model_name: 'half_plus_two',
  parameters: { source: 'server', max_batch_size: 32, batch_timeout_micros: 0 },
  signatures: {
    serving_default: signatureStats(120, 30, 120, 3)
  }
};
