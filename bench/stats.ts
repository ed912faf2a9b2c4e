// Order statistics for timing samples. Nearest rank, the same rule kvbench (Go) uses, so that a
// percentile means the same thing on both sides of a ratio.

export interface Summary {
  n: number;
  median: number;
  p95: number;
  min: number;
  max: number;
}

/** The 1-based nearest rank of the p-th percentile among `count` samples. */
function nearestRank(count: number, p: number): number {
  return Math.min(count, Math.max(1, Math.ceil((p / 100) * count)));
}

/** Nearest-rank percentile of an ascending array; NaN for no samples, so a gap cannot pass as 0. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[nearestRank(sorted.length, p) - 1] as number;
}

export function summarize(samples: readonly number[]): Summary {
  const sorted = [...samples].sort((a, b) => a - b);
  return {
    n: sorted.length,
    median: percentile(sorted, 50),
    p95: percentile(sorted, 95),
    min: sorted[0] ?? Number.NaN,
    max: sorted[sorted.length - 1] ?? Number.NaN,
  };
}

/**
 * Samples counted in buckets 1% wide (bucket k holds [1.01^k, 1.01^(k+1))), so that the samples of many
 * runs can be pooled without keeping each one: percentiles of the pool then come to within 1%.
 */
export type Histogram = Record<string, number>;

const BUCKET_GROWTH = Math.log(1.01);

export function histogram(samples: readonly number[]): Histogram {
  const counts: Histogram = {};
  for (const sample of samples) {
    const bucket = String(Math.floor(Math.log(Math.max(sample, 1)) / BUCKET_GROWTH));
    counts[bucket] = (counts[bucket] ?? 0) + 1;
  }
  return counts;
}

/** Nearest-rank percentile of all the histograms' samples together, as its bucket's geometric middle; NaN for none. */
export function pooledPercentile(histograms: readonly Histogram[], p: number): number {
  const pooled = new Map<number, number>();
  for (const counts of histograms) {
    for (const [bucket, count] of Object.entries(counts)) pooled.set(Number(bucket), (pooled.get(Number(bucket)) ?? 0) + count);
  }
  const total = [...pooled.values()].reduce((sum, count) => sum + count, 0);
  if (total === 0) return Number.NaN;
  const rank = nearestRank(total, p);
  let seen = 0;
  for (const bucket of [...pooled.keys()].sort((a, b) => a - b)) {
    seen += pooled.get(bucket) as number;
    if (seen >= rank) return Math.exp((bucket + 0.5) * BUCKET_GROWTH);
  }
  return Number.NaN;
}
