import fc from 'fast-check';
import { GatehouseError } from '../../src/errors.js';

/**
 * Texts a parser of outside input must survive: arbitrary strings, and valid `seeds` cut short, spliced
 * with arbitrary text, or with a line dropped or repeated.
 */
export function hostileText(seeds: readonly string[]): fc.Arbitrary<string> {
  const seed = fc.constantFrom(...seeds);
  const splice = fc
    .tuple(seed, fc.nat(), fc.nat({ max: 8 }), fc.string({ unit: 'binary', maxLength: 8 }))
    .map(([text, at, removed, inserted]) => {
      const cut = at % (text.length + 1);
      return text.slice(0, cut) + inserted + text.slice(cut + removed);
    });
  const lines = fc.tuple(seed, fc.nat(), fc.boolean()).map(([text, at, repeat]) => {
    const all = text.split('\n');
    const index = at % all.length;
    all.splice(index, repeat ? 0 : 1, ...(repeat ? [all[index] ?? ''] : []));
    return all.join('\n');
  });
  return fc.oneof(fc.string({ unit: 'binary', maxLength: 300 }), splice, lines, seed.map((text) => text.slice(0, text.length >> 1)));
}

/** True when `parse` returns, or throws a GatehouseError: never a TypeError, RangeError or the like. */
export function throwsOnlyGatehouseErrors(parse: (text: string) => unknown): (text: string) => boolean {
  return (text) => {
    try {
      parse(text);
      return true;
    } catch (error) {
      return error instanceof GatehouseError;
    }
  };
}
