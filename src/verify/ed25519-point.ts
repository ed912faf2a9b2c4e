/**
 * The checks libsodium's crypto_sign_verify_detached makes and OpenSSL (node:crypto) does not: a public
 * key or a signature's R must be a canonical encoding of a curve point outside the small-order subgroup,
 * and S must be below the group order L. Without them the identity key (or any of the 8 small-order
 * points) "verifies" R = identity, S = 0 over every message, so anyone could sign as that key.
 *
 * Plain BigInt arithmetic (RFC 8032 §5.1), one square root per point: under a millisecond, checked once
 * per key and twice per signature. Nothing here is secret, so constant time is not needed.
 */

const P = 2n ** 255n - 19n;
/** The order of the prime subgroup, which every honest key, R and S live in. */
const L = 2n ** 252n + 27742317777372353535851937790883648493n;
const D = mod(-121665n * inverse(121666n));
const SQRT_M1 = power(2n, (P - 1n) / 4n);
const ENCODING_BYTES = 32;

/** Projective coordinates: the affine point is (X/Z, Y/Z), so doubling needs no inversion. */
interface Point {
  X: bigint;
  Y: bigint;
  Z: bigint;
}

/**
 * Why `encoding` (32 bytes) is no safe Ed25519 point for a public key or a signature's R, or undefined when
 * it is one: canonical (y < p, and no "negative zero" x), on the curve, and not of small order.
 */
export function weakPointReason(encoding: Uint8Array): string | undefined {
  if (encoding.byteLength !== ENCODING_BYTES) return `is ${encoding.byteLength} bytes, not ${ENCODING_BYTES}`;
  const y = littleEndian(encoding) & (2n ** 255n - 1n);
  const negative = ((encoding[31] ?? 0) & 0x80) !== 0;
  // A second spelling of a point (y + p) is how the small-order twins slip past a byte comparison.
  if (y >= P) return 'is not canonical (its y coordinate is not below 2^255 - 19)';
  const x = recoverX(y, negative);
  if (x === undefined) return 'is not a point on the Ed25519 curve';
  if (x === 0n && negative) return 'is not canonical (x = 0 with the sign bit set)';
  let point: Point = { X: x, Y: y, Z: 1n };
  // The torsion subgroup has order 8: a point is of small order exactly when [8]P is the identity (0, 1).
  for (let i = 0; i < 3; i++) point = double(point);
  if (point.X === 0n && point.Y === point.Z) return 'is of small order (anyone can make signatures that verify with it)';
  return undefined;
}

/** True when the 32-byte little-endian scalar S is below L, as RFC 8032 and libsodium require of a signature. */
export function isCanonicalScalar(encoding: Uint8Array): boolean {
  return encoding.byteLength === ENCODING_BYTES && littleEndian(encoding) < L;
}

/** x from y and its sign (RFC 8032 §5.1.3), or undefined when no x makes (x, y) a curve point. */
function recoverX(y: bigint, negative: boolean): bigint | undefined {
  const u = mod(y * y - 1n);
  const v = mod(D * y * y + 1n);
  let x = mod(u * power(v, 3n) * power(u * power(v, 7n), (P - 5n) / 8n));
  const vx2 = mod(v * x * x);
  if (vx2 !== u) {
    if (vx2 !== mod(-u)) return undefined;
    x = mod(x * SQRT_M1);
  }
  return (x & 1n) === (negative ? 1n : 0n) ? x : mod(-x);
}

/** Doubling on the twisted Edwards curve with a = -1 (Hisil–Wong–Carter–Dawson, dbl-2008-hwcd). */
function double({ X, Y, Z }: Point): Point {
  const a = mod(X * X);
  const b = mod(Y * Y);
  const c = mod(2n * Z * Z);
  const e = mod((X + Y) * (X + Y) - a - b);
  const g = mod(b - a);
  const f = mod(g - c);
  const h = mod(-a - b);
  return { X: mod(e * f), Y: mod(g * h), Z: mod(f * g) };
}

function littleEndian(bytes: Uint8Array): bigint {
  let value = 0n;
  for (let i = bytes.byteLength - 1; i >= 0; i--) value = (value << 8n) | BigInt(bytes[i] ?? 0);
  return value;
}

function mod(value: bigint): bigint {
  const r = value % P;
  return r < 0n ? r + P : r;
}

function inverse(value: bigint): bigint {
  return power(value, P - 2n);
}

function power(base: bigint, exponent: bigint): bigint {
  let result = 1n;
  let b = mod(base);
  for (let e = exponent; e > 0n; e >>= 1n) {
    if (e & 1n) result = mod(result * b);
    b = mod(b * b);
  }
  return result;
}
