/**
 * JSON Web Token (RFC 7519) verification with WebCrypto alone: HS256, RS256
 * and ES256 over the JWS compact serialization (RFC 7515).
 *
 * @module
 */

/** The signature algorithms a {@linkcode JwtVerifier} can be configured with. */
export type JwtAlgorithm = "HS256" | "RS256" | "ES256";

/** Why a token was refused; stable, for metrics and logs. */
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

/** The registered claims (RFC 7519 §4.1) and whatever else the token carries. */
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

/** Options for {@linkcode JwtVerifier}. Durations are in milliseconds. */
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

// ---------------------------------------------------------------------------
// Key material

/** One length-prefixed DER element: its tag, and where its header and content lie. */
interface _Tlv {
  tag: number;
  begin: number;
  start: number;
  end: number;
}

function _tlv(der: Uint8Array, at: number, limit: number): _Tlv {
  if (at + 2 > limit) throw new TypeError("Certificate is not valid DER: truncated");
  const tag = der[at]!;
  let len = der[at + 1]!;
  let start = at + 2;
  if (len >= 0x80) {
    const n = len & 0x7f;
    // Indefinite lengths (0x80) are BER, never DER; 4 bytes cover any certificate.
    if (n === 0 || n > 4 || start + n > limit) {
      throw new TypeError("Certificate is not valid DER: bad length");
    }
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + der[start + i]!;
    start += n;
  }
  const end = start + len;
  if (end > limit) throw new TypeError("Certificate is not valid DER: truncated");
  return { tag, begin: at, start, end };
}

/**
 * The SubjectPublicKeyInfo of an X.509 certificate (RFC 5280 §4.1): the
 * seventh field of tbsCertificate once the optional `[0]` version is skipped.
 */
function _spkiOfCertificate(der: Uint8Array): Uint8Array<ArrayBuffer> {
  const cert = _tlv(der, 0, der.length);
  if (cert.tag !== 0x30) throw new TypeError("Certificate is not a DER SEQUENCE");
  const tbs = _tlv(der, cert.start, cert.end);
  if (tbs.tag !== 0x30) throw new TypeError("Certificate has no tbsCertificate");
  let el = _tlv(der, tbs.start, tbs.end);
  if (el.tag === 0xa0) el = _tlv(der, el.end, tbs.end);
  // serialNumber, signature, issuer, validity, subject, then the key.
  const tags = [0x02, 0x30, 0x30, 0x30, 0x30, 0x30];
  for (let i = 0; i < tags.length; i++) {
    if (el.tag !== tags[i]) throw new TypeError("Certificate fields are not as RFC 5280 lays out");
    if (i < tags.length - 1) el = _tlv(der, el.end, tbs.end);
  }
  return der.slice(el.begin, el.end);
}

/**
 * The SPKI DER bytes of a PEM public key or certificate (its first block).
 *
 * @throws {TypeError} When the PEM is not a public key or certificate.
 */
function _spkiFromPem(pem: string): Uint8Array<ArrayBuffer> {
  const m = /-----BEGIN ([A-Z0-9 ]+)-----\r?\n([\s\S]*?)-----END \1-----/.exec(pem);
  if (!m) throw new TypeError("Public key is not PEM: no BEGIN/END block");
  const label = m[1]!;
  if (label.includes("PRIVATE KEY")) {
    throw new TypeError(`Public key PEM holds a private key, which must stay private: ${label}`);
  }
  if (label === "RSA PUBLIC KEY") {
    throw new TypeError(
      "Public key is PKCS#1; convert it to SPKI: openssl rsa -RSAPublicKey_in -in FILE -pubout",
    );
  }
  if (label !== "PUBLIC KEY" && label !== "CERTIFICATE") {
    throw new TypeError(`Public key PEM must be a PUBLIC KEY or CERTIFICATE block: ${label}`);
  }
  const b64 = m[2]!.replace(/\s+/g, "");
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(b64) || b64.length % 4 !== 0) {
    // Also catches encapsulated headers (Proc-Type, DEK-Info) of encrypted PEM.
    throw new TypeError(`Public key PEM body is not base64: ${label}`);
  }
  const binary = atob(b64);
  const der = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) der[i] = binary.charCodeAt(i);
  return label === "CERTIFICATE" ? _spkiOfCertificate(der) : der;
}

const _PARAMS = {
  HS256: { name: "HMAC", hash: "SHA-256" },
  RS256: { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" },
  ES256: { name: "ECDSA", namedCurve: "P-256" },
} as const;

const _VERIFY = {
  HS256: { name: "HMAC" },
  RS256: { name: "RSASSA-PKCS1-v1_5" },
  ES256: { name: "ECDSA", hash: "SHA-256" },
} as const;

/** The key and the signature length it implies. */
interface _Key {
  key: CryptoKey;
  signatureLength: number;
}

function _checkKey(algorithm: JwtAlgorithm, key: CryptoKey): _Key {
  const alg = key.algorithm as KeyAlgorithm & {
    hash?: { name: string };
    namedCurve?: string;
    modulusLength?: number;
  };
  const expected = _PARAMS[algorithm];
  if (alg.name !== expected.name || !key.usages.includes("verify")) {
    throw new TypeError(`Key is not a ${algorithm} verification key: ${alg.name}`);
  }
  if (algorithm === "HS256") {
    if (key.type !== "secret" || alg.hash?.name !== "SHA-256") {
      throw new TypeError("Key is not an HMAC SHA-256 secret");
    }
    return { key, signatureLength: 32 };
  }
  if (key.type !== "public") throw new TypeError(`Key for ${algorithm} is not a public key`);
  if (algorithm === "ES256") {
    if (alg.namedCurve !== "P-256") {
      throw new TypeError(`Key for ES256 is not on curve P-256: ${alg.namedCurve}`);
    }
    // JWS carries r||s, 32 bytes each (RFC 7518 §3.4), not DER.
    return { key, signatureLength: 64 };
  }
  if (alg.hash?.name !== "SHA-256") {
    throw new TypeError(`Key for RS256 is not bound to SHA-256: ${alg.hash?.name}`);
  }
  const bits = alg.modulusLength ?? 0;
  if (bits < 2048) throw new RangeError(`RSA key must have at least 2048 bits: ${bits}`);
  return { key, signatureLength: Math.ceil(bits / 8) };
}

async function _importKey(options: JwtVerifierOptions): Promise<_Key> {
  const { algorithm, secret, publicKey } = options;
  if (algorithm === "HS256") {
    // A copy: the caller's bytes may change, or sit on a SharedArrayBuffer.
    const bytes = typeof secret === "string" ? _encoder.encode(secret) : new Uint8Array(secret!);
    const key = await crypto.subtle.importKey("raw", bytes, _PARAMS.HS256, false, ["verify"]);
    return _checkKey(algorithm, key);
  }
  if (typeof publicKey !== "string") return _checkKey(algorithm, publicKey!);
  const spki = _spkiFromPem(publicKey);
  let key: CryptoKey;
  try {
    key = await crypto.subtle.importKey("spki", spki, _PARAMS[algorithm], false, ["verify"]);
  } catch (err) {
    const kind = algorithm === "RS256" ? "an RSA key" : "a P-256 EC key";
    throw new TypeError(`Public key is not ${kind}, as ${algorithm} needs`, { cause: err });
  }
  return _checkKey(algorithm, key);
}

// ---------------------------------------------------------------------------

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
  #key: Promise<_Key>;
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
    if (!Object.hasOwn(_PARAMS, algorithm)) {
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
      if (typeof publicKey === "string") _spkiFromPem(publicKey);
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
    this.#key = _importKey(options);
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
    if (!await crypto.subtle.verify(_VERIFY[this.algorithm], key, signature, signed)) {
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
