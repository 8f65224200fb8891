/**
 * Live request rate and latency percentiles from the server's counters.
 *
 * `GET api/metrics` returns TF Serving's metrics as cumulative counters and
 * histograms (`:tensorflow:serving:request_count`, `...:request_latency` in
 * microseconds). A rate or a recent percentile is a difference between two
 * readings, as Prometheus computes them: the window keeps the readings of the
 * last `windowMs` and reports what happened between the oldest and the newest.
 * A server restart (counters going down) starts the window afresh.
 */

import { BadResponse } from './model';

const REQUEST_COUNT = ':tensorflow:serving:request_count';
const REQUEST_LATENCY = ':tensorflow:serving:request_latency';

/** One model's cumulative counters at one moment. */
export interface IModelCounters {
  requests: number;
  /** Upper bounds of the latency buckets, in microseconds. */
  bounds: number[];
  /** Requests per latency bucket (not cumulative). */
  counts: number[];
  /** Requests with a latency, including those above the last bound. */
  observed: number;
}

export interface IRequestStats {
  requestsPerSecond: number;
  p50Ms?: number;
  p99Ms?: number;
}

type Series = {
  labels?: { [name: string]: string };
  value?: number;
  buckets?: number[];
  counts?: number[];
  count?: number;
};

/** The request counters of every model in a `GET api/metrics` answer. */
export function parseMetrics(body: unknown): {
  [model: string]: IModelCounters;
} {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new BadResponse('the metrics are not an object');
  }
  const metrics = body as { [name: string]: Series[] };
  const models: { [model: string]: IModelCounters } = {};
  const of = (series: Series): IModelCounters | undefined => {
    const name = series.labels?.model_name;
    if (!name) {
      return undefined;
    }
    return (models[name] ??= {
      requests: 0,
      bounds: [],
      counts: [],
      observed: 0
    });
  };
  for (const series of Array.isArray(metrics[REQUEST_COUNT])
    ? metrics[REQUEST_COUNT]
    : []) {
    const model = of(series);
    if (model && typeof series.value === 'number') {
      model.requests += series.value;
    }
  }
  for (const series of Array.isArray(metrics[REQUEST_LATENCY])
    ? metrics[REQUEST_LATENCY]
    : []) {
    const model = of(series);
    if (
      !model ||
      !Array.isArray(series.buckets) ||
      !Array.isArray(series.counts)
    ) {
      continue;
    }
    // Every series of a model (REST and gRPC, each API) shares the buckets: add them up.
    if (model.bounds.length === 0) {
      model.bounds = series.buckets.slice();
      model.counts = series.buckets.map(() => 0);
    }
    series.counts.forEach((n, i) => {
      if (i < model.counts.length) {
        model.counts[i] += n;
      }
    });
    model.observed += series.count ?? 0;
  }
  return models;
}

/**
 * The latency below which a fraction `q` of the requests fell, in milliseconds,
 * interpolated within its bucket; `undefined` without requests.
 */
export function quantileMs(
  q: number,
  bounds: number[],
  counts: number[],
  observed: number
): number | undefined {
  if (observed <= 0) {
    return undefined;
  }
  const rank = q * observed;
  let seen = 0;
  for (let i = 0; i < counts.length; i++) {
    if (counts[i] > 0 && seen + counts[i] >= rank) {
      const lower = i === 0 ? 0 : bounds[i - 1];
      const fraction = (rank - seen) / counts[i];
      return (lower + (bounds[i] - lower) * fraction) / 1000;
    }
    seen += counts[i];
  }
  // Above the last bound: all that is known is that it took longer.
  return bounds.length ? bounds[bounds.length - 1] / 1000 : undefined;
}

export class RateWindow {
  constructor(readonly windowMs = 30000) {}

  /** Record one reading of every model's counters, taken at `at` (milliseconds). */
  add(at: number, counters: { [model: string]: IModelCounters }): void {
    this._readings.push({ at, counters });
    // Keep the newest reading older than the window: it is the window's start.
    while (
      this._readings.length > 2 &&
      this._readings[1].at <= at - this.windowMs
    ) {
      this._readings.shift();
    }
  }

  /** Requests per second and latency percentiles over the window, or `undefined` before two readings. */
  stats(model: string): IRequestStats | undefined {
    if (this._readings.length < 2) {
      return undefined;
    }
    const first = this._readings[0];
    const last = this._readings[this._readings.length - 1];
    const now = last.counters[model];
    if (!now) {
      return { requestsPerSecond: 0 };
    }
    let then = first.counters[model];
    if (!then || then.requests > now.requests || then.observed > now.observed) {
      then = {
        requests: 0,
        bounds: now.bounds,
        counts: now.counts.map(() => 0),
        observed: 0
      };
    }
    const seconds = (last.at - first.at) / 1000;
    const counts = now.counts.map((n, i) => n - (then!.counts[i] ?? 0));
    const observed = now.observed - then.observed;
    return {
      requestsPerSecond:
        seconds > 0 ? (now.requests - then.requests) / seconds : 0,
      p50Ms: quantileMs(0.5, now.bounds, counts, observed),
      p99Ms: quantileMs(0.99, now.bounds, counts, observed)
    };
  }

  private _readings: {
    at: number;
    counters: { [model: string]: IModelCounters };
  }[] = [];
}
