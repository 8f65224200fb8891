import { parseMetrics, quantileMs, RateWindow } from '../src/rates';
import * as fixtures from './fixtures';

describe('parseMetrics', () => {
  it("adds up a model's series across statuses, APIs and entry points", () => {
    const counters = parseMetrics(fixtures.metrics(40));
    expect(Object.keys(counters)).toEqual(['half_plus_two']);
    const hpt = counters.half_plus_two;
    expect(hpt.requests).toBe(40);
    expect(hpt.observed).toBe(40);
    expect(hpt.counts[10]).toBe(40);
    expect(hpt.bounds).toEqual(fixtures.latencyBounds);
  });

  it('reads a server without requests as no models', () => {
    expect(parseMetrics({})).toEqual({});
    expect(() => parseMetrics([])).toThrow('the metrics are not an object');
  });
});

describe('quantileMs', () => {
  const bounds = [1000, 2000, 4000];

  it('interpolates within the bucket the rank falls in', () => {
    expect(quantileMs(0.5, bounds, [0, 10, 0], 10)).toBe(1.5);
    expect(quantileMs(0.99, bounds, [90, 0, 10], 100)).toBeCloseTo(3.8);
    expect(quantileMs(0.5, bounds, [90, 0, 10], 100)).toBeCloseTo(0.5556, 3);
  });

  it('says "at least the last bound" for requests above it, and nothing without requests', () => {
    expect(quantileMs(0.99, bounds, [1, 0, 0], 10)).toBe(4);
    expect(quantileMs(0.5, bounds, [0, 0, 0], 0)).toBeUndefined();
  });
});

describe('RateWindow', () => {
  it('needs two readings', () => {
    const window = new RateWindow(30000);
    window.add(0, parseMetrics(fixtures.metrics(10)));
    expect(window.stats('half_plus_two')).toBeUndefined();
  });

  it('reports the requests between its oldest and newest reading', () => {
    const window = new RateWindow(30000);
    window.add(0, parseMetrics(fixtures.metrics(10, 10)));
    window.add(2000, parseMetrics(fixtures.metrics(50, 10)));
    const stats = window.stats('half_plus_two')!;
    expect(stats.requestsPerSecond).toBe(20);
    // The 40 new requests fell in bucket 10.
    const [lower, upper] = [
      fixtures.latencyBounds[9],
      fixtures.latencyBounds[10]
    ];
    expect(stats.p50Ms).toBeCloseTo((lower + (upper - lower) * 0.5) / 1000);
    expect(stats.p99Ms).toBeCloseTo((lower + (upper - lower) * 0.99) / 1000);
  });

  it('forgets readings older than the window', () => {
    const window = new RateWindow(10000);
    window.add(0, parseMetrics(fixtures.metrics(0)));
    window.add(5000, parseMetrics(fixtures.metrics(1000)));
    window.add(20000, parseMetrics(fixtures.metrics(1000)));
    window.add(25000, parseMetrics(fixtures.metrics(1100)));
    // From 5 s (the newest reading at least 10 s old) to 25 s: 100 requests in 20 s.
    expect(window.stats('half_plus_two')!.requestsPerSecond).toBe(5);
  });

  it('reports an idle model as 0 req/s without latencies', () => {
    const window = new RateWindow();
    window.add(0, parseMetrics(fixtures.metrics(10)));
    window.add(2000, parseMetrics(fixtures.metrics(10)));
    expect(window.stats('half_plus_two')).toEqual({
      requestsPerSecond: 0,
      p50Ms: undefined,
      p99Ms: undefined
    });
    expect(window.stats('never_called')).toEqual({ requestsPerSecond: 0 });
  });

  it('starts afresh when the counters go down (a restarted server)', () => {
    const window = new RateWindow();
    window.add(0, parseMetrics(fixtures.metrics(500)));
    window.add(4000, parseMetrics(fixtures.metrics(8)));
    expect(window.stats('half_plus_two')!.requestsPerSecond).toBe(2);
  });
});
