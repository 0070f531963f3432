/**
 * The keys a `JwtVerifier` verifies with: an HS256 secret, or an RS256 or
 * ES256 public key read from PEM (an SPKI block, or the key of an X.509
 * certificate), imported with WebCrypto and checked against the algorithm.
 *
 * @module
 */

/**
 * The signature algorithms a `JwtVerifier` can be configured with.
 *
 * @example
 * ```ts
 * import type { JwtAlgorithm } from "./jwt_key.ts";
 *
 * const algorithm: JwtAlgorithm = "ES256";
 * ```
 */
export type JwtAlgorithm = "HS256" | "RS256" | "ES256";

const _encoder = new TextEncoder();

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
 * @internal The SPKI DER bytes of a PEM public key or certificate (its
 * first block); the verifier calls it early to refuse bad PEM at once.
 *
 * @throws {TypeError} When the PEM is not a public key or certificate.
 */
export function spkiFromPem(pem: string): Uint8Array<ArrayBuffer> {
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

/** @internal The WebCrypto `verify` parameters of each algorithm. */
export const JWT_VERIFY_PARAMS = {
  HS256: { name: "HMAC" },
  RS256: { name: "RSASSA-PKCS1-v1_5" },
  ES256: { name: "ECDSA", hash: "SHA-256" },
} as const;

/** @internal A verification key and the signature length it implies. */
export interface JwtKey {
  key: CryptoKey;
  signatureLength: number;
}

function _checkKey(algorithm: JwtAlgorithm, key: CryptoKey): JwtKey {
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

/**
 * @internal Imports and checks the key `algorithm` verifies with: `secret`
 * for HS256, `publicKey` (PEM or a `CryptoKey`) for RS256 and ES256.
 *
 * @throws {TypeError} When the key is not one `algorithm` can verify with.
 * @throws {RangeError} When an RSA key is shorter than 2048 bits.
 */
export async function importJwtKey(
  algorithm: JwtAlgorithm,
  secret: string | Uint8Array | undefined,
  publicKey: string | CryptoKey | undefined,
): Promise<JwtKey> {
  if (algorithm === "HS256") {
    // A copy: the caller's bytes may change, or sit on a SharedArrayBuffer.
    const bytes = typeof secret === "string" ? _encoder.encode(secret) : new Uint8Array(secret!);
    const key = await crypto.subtle.importKey("raw", bytes, _PARAMS.HS256, false, ["verify"]);
    return _checkKey(algorithm, key);
  }
  if (typeof publicKey !== "string") return _checkKey(algorithm, publicKey!);
  const spki = spkiFromPem(publicKey);
  let key: CryptoKey;
  try {
    key = await crypto.subtle.importKey("spki", spki, _PARAMS[algorithm], false, ["verify"]);
  } catch (err) {
    const kind = algorithm === "RS256" ? "an RSA key" : "a P-256 EC key";
    throw new TypeError(`Public key is not ${kind}, as ${algorithm} needs`, { cause: err });
  }
  return _checkKey(algorithm, key);
}
