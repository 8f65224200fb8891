/**
 * A model's live numbers over the last 30 s: request rate, latency
 * percentiles, and (when the server batches) batch size and queue depth.
 */

import * as React from 'react';

import { formatNumber } from '../format';
import { IModelStats } from '../model';
import { CLASS } from './css';

/** Whether there is any number to show; a model nobody called yet has none. */
export function hasNumbers(stats: IModelStats): boolean {
  return Object.values(stats).some(value => value !== undefined);
}

export function Stats({ stats }: { stats: IModelStats }): JSX.Element {
  const items: [string, string, string][] = [
    [
      'req/s',
      formatNumber(stats.requestsPerSecond),
      'Requests per second, over the last 30 s'
    ],
    [
      'p50',
      formatNumber(stats.p50Ms, ' ms'),
      'Median request latency, over the last 30 s'
    ],
    [
      'p99',
      formatNumber(stats.p99Ms, ' ms'),
      '99th percentile request latency, over the last 30 s'
    ]
  ];
  // Batch size and queue depth exist only when the server batches requests.
  if (stats.avgBatchSize !== undefined || stats.queueDepth !== undefined) {
    items.push(
      [
        'batch',
        formatNumber(stats.avgBatchSize),
        'Average batch size (rows per batch)'
      ],
      ['queue', formatNumber(stats.queueDepth), 'Rows waiting to be batched']
    );
  }
  return (
    <dl className={`${CLASS}-stats`}>
      {items.map(([label, text, title]) => (
        <div key={label} title={title}>
          <dt>{label}</dt>
          <dd>{text}</dd>
        </div>
      ))}
    </dl>
  );
}
