/**
 * How the panel writes numbers, durations, shapes and dtypes: pure functions,
 * kept apart from the components so each rule can be tested on its own.
 */

/** Three significant figures at most, so a trickle (0.03 req/s) does not read as zero. */
export function formatNumber(n: number | undefined, unit = ''): string {
  if (n === undefined) {
    return '—';
  }
  const digits =
    n === 0 || Math.abs(n) >= 100
      ? 0
      : Math.abs(n) >= 10
        ? 1
        : Math.abs(n) >= 1
          ? 2
          : 3;
  return `${Number(n.toFixed(digits))}${unit}`;
}

/** The coarsest unit that still says something: `42 s`, `5 min`, `3 h`, `2 d`. */
export function formatDuration(seconds: number): string {
  if (seconds < 60) {
    return `${Math.floor(seconds)} s`;
  }
  if (seconds < 3600) {
    return `${Math.floor(seconds / 60)} min`;
  }
  const hours = Math.floor(seconds / 3600);
  return hours < 48 ? `${hours} h` : `${Math.floor(hours / 24)} d`;
}

/** `[?, 3]` for a batch of rows of 3; TF Serving writes an unknown dimension as -1. */
export function formatShape(shape: number[] | null): string {
  if (shape === null) {
    return 'unknown rank';
  }
  return `[${shape.map(d => (d < 0 ? '?' : String(d))).join(', ')}]`;
}

/** `DT_FLOAT` -> `float`. */
export function formatDtype(dtype: string): string {
  return dtype.replace(/^DT_/, '').toLowerCase();
}
