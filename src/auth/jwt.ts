/**
 * JSON Web Token (RFC 7519) verification with WebCrypto alone: HS256, RS256
 * and ES256 over the JWS compact serialization (RFC 7515).
 *
 * @module
 */

import {
  importJwtKey,
  JWT_VERIFY_PARAMS,
  type JwtAlgorithm,
  type JwtKey,
  spkiFromPem,
} from "./jwt_key.ts";

export type { JwtAlgorithm } from "./jwt_key.ts";

/**
 * Why a token was refused; stable, for metrics and logs.
 *
 * @example
 * ```ts
 * import { JwtError, type JwtErrorReason } from "./jwt.ts";
 *
 * const refusals = new Map<JwtErrorReason, number>();
 * const err = new JwtError("expired", "Token has expired");
 * refusals.set(err.reason, (refusals.get(err.reason) ?? 0) + 1);
 * ```
 */
export type JwtErrorReason =
  | "malformed"
  | "bad_signature"
  | "wrong_algorithm"
  | "expired"
  | "not_yet_valid"
  | "claims";

/**
 * Thrown by {@linkcode JwtVerifier.verify} when a token is refused. The
 * message is fit to show the client; `reason` says which check failed.
 *
 * @example
 * ```ts
 * import { JwtError } from "./jwt.ts";
 * const err = new JwtError("expired", "Token has expired: at 2026-01-01T00:00:00.000Z");
 * console.log(err.reason); // "expired"
 * ```
 */
export class JwtError extends Error {
  /** Which check refused the token. */
  readonly reason: JwtErrorReason;

  /** Creates the error with its reason code and a sentence-case message. */
  constructor(reason: JwtErrorReason, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "JwtError";
    this.reason = reason;
  }
}

/**
 * The registered claims (RFC 7519 §4.1) and whatever else the token carries.
 *
 * @example
 * ```ts
 * import type { JwtClaims } from "./jwt.ts";
 *
 * const claims: JwtClaims = {
 *   sub: 42,
 *   aud: "comet",
 *   exp: Math.floor(Date.now() / 1000) + 3600,
 *   room: "live://1000",
 * };
 * ```
 */
export interface JwtClaims {
  /** Issuer. */
  iss?: string;
  /** Subject; Comet's JWT operator reads the user id (mid) from it. */
  sub?: string | number;
  /** Audience: one or several. */
  aud?: string | string[];
  /** Expiry, in seconds since the epoch. */
  exp?: number;
  /** Not before, in seconds since the epoch. */
  nbf?: number;
  /** Issued at, in seconds since the epoch. */
  iat?: number;
  /** Token id. */
  jti?: string;
  /** Any other claim. */
  [claim: string]: unknown;
}

/**
 * Options for {@linkcode JwtVerifier}. Durations are in milliseconds.
 *
 * @example
 * ```ts
 * import type { JwtVerifierOptions } from "./jwt.ts";
 *
 * const options: JwtVerifierOptions = {
 *   algorithm: "HS256",
 *   secret: "a shared secret of at least 32 bytes!!",
 *   audience: "comet",
 *   maxAge: 24 * 3_600_000,
 * };
 * ```
 */
export interface JwtVerifierOptions {
  /**
   * The one algorithm tokens must be signed with. A token whose header names
   * another (including `none`) is refused, whatever its signature.
   */
  algorithm: JwtAlgorithm;
  /** HS256 only: the shared secret, at least 32 bytes (a string is taken as UTF-8). */
  secret?: string | Uint8Array;
  /**
   * RS256 and ES256 only: the public key as PEM, either an SPKI
   * `PUBLIC KEY` block or an X.509 `CERTIFICATE` (only its key is used: the
   * certificate's dates and issuer are not checked), or an imported
   * `CryptoKey`. RSA keys must have at least 2048 bits; ES256 keys are P-256.
   */
  publicKey?: string | CryptoKey;
  /** Whether a token without `exp` is refused. Default true. */
  requireExp?: boolean;
  /** Leeway for `exp`, `nbf` and `iat` against clocks that differ. Default 30 s. */
  clockSkew?: number;
  /** Refuse tokens issued (`iat`) longer ago than this; requires `iat`. Default: no limit. */
  maxAge?: number;
  /** Accepted issuers; when set, `iss` must be one of them. */
  issuer?: string | readonly string[];
  /**
   * Accepted audiences; when set, `aud` must name one of them. When unset, a
   * token that has an `aud` is refused, as RFC 7519 §4.1.3 requires: it was
   * meant for someone who identifies themselves, and this verifier does not.
   */
  audience?: string | readonly string[];
  /** Longest token accepted, in characters. Default 8192. */
  maxLength?: number;
  /** The clock, in milliseconds since the epoch. Default `Date.now`. */
  now?: () => number;
}

const _encoder = new TextEncoder();
const _decoder = new TextDecoder("utf-8", { fatal: true });
// The signature may be empty so that an `alg: none` token is refused for its
// algorithm, the clearer reason, rather than for its shape.
const _SHAPE = /^([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]*)$/;
const _B64URL = (() => {
  const table = new Int8Array(128).fill(-1);
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  for (let i = 0; i < alphabet.length; i++) table[alphabet.charCodeAt(i)] = i;
  return table;
})();

/**
 * Decodes unpadded base64url, strictly: only the URL-safe alphabet, no
 * padding, no impossible length, and the unused bits of the last character
 * zero, so that every byte string has exactly one accepted encoding.
 *
 * @throws {JwtError} `malformed`, naming `part`.
 */
function _base64url(text: string, part: string): Uint8Array<ArrayBuffer> {
  const n = text.length;
  if (n % 4 === 1) throw new JwtError("malformed", `Token ${part} is not valid base64url`);
  const out = new Uint8Array(Math.floor((n * 3) / 4));
  let acc = 0;
  let bits = 0;
  let o = 0;
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    const v = c < 128 ? _B64URL[c]! : -1;
    if (v < 0) throw new JwtError("malformed", `Token ${part} is not valid base64url`);
    acc = (acc << 6) | v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (acc >> bits) & 0xff;
      acc &= (1 << bits) - 1;
    }
  }
  if (acc !== 0) throw new JwtError("malformed", `Token ${part} is not canonical base64url`);
  return out;
}

function _json(bytes: Uint8Array, part: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(_decoder.decode(bytes));
  } catch {
    throw new JwtError("malformed", `Token ${part} is not UTF-8 JSON`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new JwtError("malformed", `Token ${part} is not a JSON object`);
  }
  return value as Record<string, unknown>;
}

function _list(name: string, value: string | readonly string[] | undefined): Set<string> | null {
  if (value === undefined) return null;
  const list = typeof value === "string" ? [value] : value;
  if (!Array.isArray(list) || list.length === 0 || !list.every((s) => typeof s === "string")) {
    throw new TypeError(`${name} must be a string or a non-empty array of strings`);
  }
  return new Set(list);
}

function _duration(name: string, value: number | undefined, fallback: number | null) {
  if (value === undefined) return fallback;
  if (!Number.isFinite(value) || value < 0) {
    throw new RangeError(`${name} must be a non-negative number of milliseconds: ${value}`);
  }
  return value;
}

function _time(seconds: number): string {
  const date = new Date(seconds * 1000);
  return Number.isNaN(date.getTime()) ? String(seconds) : date.toISOString();
}

function _show(value: unknown): string {
  const text = typeof value === "string" ? value : JSON.stringify(value) ?? String(value);
  return text.length > 64 ? `${text.slice(0, 64)}...` : text;
}

/**
 * Verifies compact JWS tokens against one configured algorithm and key. The
 * key is imported once, when the verifier is made; call
 * {@linkcode JwtVerifier.ready} at startup to fail early on an unusable key.
 *
 * What it checks, in order: the shape (three strict base64url parts, at most
 * `maxLength`), the header (`alg` equal to the configured algorithm, no
 * `crit`), the signature (length first, then WebCrypto), then the claims
 * (`exp`, `nbf`, `iat`, `maxAge`, `iss`, `aud`). Header fields that point
 * at other keys (`jku`, `jwk`, `x5u`, `x5c`, `kid`) are ignored: only the
 * configured key ever verifies.
 *
 * @example
 * ```ts
 * import { JwtVerifier } from "./jwt.ts";
 *
 * const verifier = new JwtVerifier({
 *   algorithm: "HS256",
 *   secret: "a shared secret of at least 32 bytes!!",
 *   issuer: "https://app.example",
 * });
 * await verifier.ready();
 * try {
 *   await verifier.verify("not.a.token");
 * } catch (err) {
 *   console.log((err as Error).name); // "JwtError"
 * }
 * ```
 */
export class JwtVerifier {
  /** The algorithm tokens must use. */
  readonly algorithm: JwtAlgorithm;
  /** The configured clock skew in milliseconds. */
  readonly clockSkew: number;
  #key: Promise<JwtKey>;
  #requireExp: boolean;
  #maxAge: number | null;
  #issuers: Set<string> | null;
  #audiences: Set<string> | null;
  #maxLength: number;
  #now: () => number;

  /**
   * Checks the options and starts importing the key.
   *
   * @throws {TypeError} When the algorithm is unknown, or the key material
   * does not fit it (a secret for RS256, PEM that is not a public key ...).
   * @throws {RangeError} When the HS256 secret is shorter than 32 bytes or a
   * duration is negative.
   */
  constructor(options: JwtVerifierOptions) {
    const { algorithm, secret, publicKey } = options;
    if (!Object.hasOwn(JWT_VERIFY_PARAMS, algorithm)) {
      throw new TypeError(`JWT algorithm must be HS256, RS256 or ES256: ${algorithm}`);
    }
    this.algorithm = algorithm;
    if (algorithm === "HS256") {
      if (publicKey !== undefined) throw new TypeError("HS256 takes a secret, not a public key");
      if (typeof secret !== "string" && !(secret instanceof Uint8Array)) {
        throw new TypeError("HS256 needs a secret: a string or bytes");
      }
      const length = typeof secret === "string" ? _encoder.encode(secret).length : secret.length;
      // RFC 7518 §3.2: an HS256 key shorter than the hash is not allowed.
      if (length < 32) throw new RangeError(`HS256 secret must be at least 32 bytes: ${length}`);
    } else {
      if (secret !== undefined) {
        throw new TypeError(`${algorithm} takes a public key, not a secret`);
      }
      if (typeof publicKey === "string") spkiFromPem(publicKey);
      else if (!(publicKey instanceof CryptoKey)) {
        throw new TypeError(`${algorithm} needs a public key: PEM text or a CryptoKey`);
      }
    }
    this.clockSkew = _duration("Clock skew", options.clockSkew, 30_000)!;
    this.#maxAge = _duration("Max age", options.maxAge, null);
    this.#requireExp = options.requireExp ?? true;
    this.#issuers = _list("Issuer", options.issuer);
    this.#audiences = _list("Audience", options.audience);
    this.#maxLength = options.maxLength ?? 8192;
    if (!Number.isSafeInteger(this.#maxLength) || this.#maxLength < 16) {
      throw new RangeError(
        `Max token length must be an integer of at least 16: ${options.maxLength}`,
      );
    }
    this.#now = options.now ?? Date.now;
    this.#key = importJwtKey(options.algorithm, options.secret, options.publicKey);
    // Surfaced by ready() and verify(); not an unhandled rejection meanwhile.
    this.#key.catch(() => {});
  }

  /**
   * Resolves once the key is imported.
   *
   * @throws {TypeError} When the key cannot serve the algorithm.
   * @throws {RangeError} When an RSA key is shorter than 2048 bits.
   */
  async ready(): Promise<void> {
    await this.#key;
  }

  /**
   * Verifies `token` and returns its claims.
   *
   * @throws {JwtError} When the token is refused; its `reason` says why.
   * @throws {TypeError} When the configured key could not be imported.
   */
  async verify(token: string): Promise<JwtClaims> {
    if (typeof token !== "string") throw new JwtError("malformed", "Token is not a string");
    if (token.length > this.#maxLength) {
      throw new JwtError("malformed", `Token is longer than ${this.#maxLength} characters`);
    }
    const m = _SHAPE.exec(token);
    if (!m) throw new JwtError("malformed", "Token is not three base64url parts");
    const header = _json(_base64url(m[1]!, "header"), "header");
    const payload = _base64url(m[2]!, "payload");
    const signature = _base64url(m[3]!, "signature");
    if (header.alg !== this.algorithm) {
      throw new JwtError(
        "wrong_algorithm",
        `Token algorithm must be ${this.algorithm}: ${_show(header.alg ?? "none given")}`,
      );
    }
    if (header.crit !== undefined) {
      // RFC 7515 §4.1.11: extensions we do not implement must make the token invalid.
      throw new JwtError("malformed", `Token header has unsupported crit: ${_show(header.crit)}`);
    }
    const { key, signatureLength } = await this.#key;
    if (signature.length !== signatureLength) {
      throw new JwtError(
        "bad_signature",
        `Token signature is not ${signatureLength} bytes: ${signature.length}`,
      );
    }
    const signed = _encoder.encode(token.slice(0, m[1]!.length + 1 + m[2]!.length));
    if (!await crypto.subtle.verify(JWT_VERIFY_PARAMS[this.algorithm], key, signature, signed)) {
      throw new JwtError("bad_signature", "Token signature is invalid");
    }
    const claims = _json(payload, "payload") as JwtClaims;
    this.#checkClaims(claims);
    return claims;
  }

  #checkClaims(claims: JwtClaims): void {
    for (const name of ["exp", "nbf", "iat"] as const) {
      const v = claims[name];
      if (v !== undefined && (typeof v !== "number" || !Number.isFinite(v))) {
        throw new JwtError("claims", `Token claim ${name} is not a number: ${_show(v)}`);
      }
    }
    const now = this.#now();
    const skew = this.clockSkew;
    if (claims.exp === undefined) {
      if (this.#requireExp) throw new JwtError("claims", "Token has no exp claim");
    } else if (now - skew >= claims.exp * 1000) {
      throw new JwtError("expired", `Token has expired: at ${_time(claims.exp)}`);
    }
    if (claims.nbf !== undefined && now + skew < claims.nbf * 1000) {
      throw new JwtError("not_yet_valid", `Token is not valid yet: from ${_time(claims.nbf)}`);
    }
    if (claims.iat !== undefined && now + skew < claims.iat * 1000) {
      throw new JwtError("not_yet_valid", `Token was issued in the future: ${_time(claims.iat)}`);
    }
    if (this.#maxAge !== null) {
      if (claims.iat === undefined) throw new JwtError("claims", "Token has no iat claim");
      if (now - skew > claims.iat * 1000 + this.#maxAge) {
        throw new JwtError("expired", `Token is too old: issued at ${_time(claims.iat)}`);
      }
    }
    if (this.#issuers !== null) {
      if (typeof claims.iss !== "string" || !this.#issuers.has(claims.iss)) {
        throw new JwtError(
          "claims",
          `Token issuer is not accepted: ${_show(claims.iss ?? "none")}`,
        );
      }
    }
    const aud = claims.aud;
    if (this.#audiences !== null) {
      const list = typeof aud === "string" ? [aud] : Array.isArray(aud) ? aud : [];
      if (!list.some((a) => typeof a === "string" && this.#audiences!.has(a))) {
        throw new JwtError("claims", `Token audience is not accepted: ${_show(aud ?? "none")}`);
      }
    } else if (aud !== undefined) {
      throw new JwtError(
        "claims",
        `Token is meant for an audience, and none is configured: ${_show(aud)}`,
      );
    }
  }
}
