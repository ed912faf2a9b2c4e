import test from 'ava';
import fc from 'fast-check';
import { histogram, percentile, pooledPercentile } from '../../bench/stats.js';

test('pooledPercentile of histograms is within 1% of the percentile of all their samples together', (t) => {
  fc.assert(
    fc.property(
      fc.array(fc.array(fc.double({ min: 1, max: 1e7, noNaN: true }), { minLength: 1, maxLength: 200 }), { minLength: 1, maxLength: 5 }),
      fc.integer({ min: 1, max: 100 }),
      (runs, p) => {
        const exact = percentile(runs.flat().sort((a, b) => a - b), p);
        const pooled = pooledPercentile(runs.map(histogram), p);
        return Math.abs(pooled - exact) / exact <= 0.01;
      },
    ),
  );
  t.true(Number.isNaN(pooledPercentile([], 99)), 'no samples is NaN, not 0');
});
