// Shared by the JWT tests: mint tokens with WebCrypto and export keys as PEM.

const _encoder = new TextEncoder();

export const SECRET = "a test secret that is surely 32+ bytes long";

/** Unpadded base64url of bytes or of a string's UTF-8. */
export function b64url(data: Uint8Array | string): string {
  const bytes = typeof data === "string" ? _encoder.encode(data) : data;
  let binary = "";
  for (const b of bytes) binary += String.fromCharCode(b);
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** Seconds since the epoch, as JWT claims count time. */
export function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}

const _SIGN = {
  HS256: { name: "HMAC" },
  RS256: { name: "RSASSA-PKCS1-v1_5" },
  ES256: { name: "ECDSA", hash: "SHA-256" },
} as const;

/** Signs `payload` with `key` as JWS compact; `header` overrides the default header. */
export async function sign(
  alg: "HS256" | "RS256" | "ES256",
  key: CryptoKey,
  payload: Record<string, unknown>,
  header: Record<string, unknown> = { alg, typ: "JWT" },
): Promise<string> {
  const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(payload))}`;
  const sig = await crypto.subtle.sign(_SIGN[alg], key, _encoder.encode(input));
  return `${input}.${b64url(new Uint8Array(sig))}`;
}

/** The HMAC signing key for a secret. */
export function hmacKey(secret: string | Uint8Array = SECRET): Promise<CryptoKey> {
  const bytes = typeof secret === "string" ? _encoder.encode(secret) : new Uint8Array(secret);
  return crypto.subtle.importKey("raw", bytes, { name: "HMAC", hash: "SHA-256" }, false, [
    "sign",
  ]);
}

/** PEM armour around DER bytes. */
export function pem(label: string, der: ArrayBuffer | Uint8Array): string {
  const bytes = der instanceof Uint8Array ? der : new Uint8Array(der);
  let binary = "";
  for (const b of bytes) binary += String.fromCharCode(b);
  const lines = btoa(binary).match(/.{1,64}/g)!.join("\n");
  return `-----BEGIN ${label}-----\n${lines}\n-----END ${label}-----\n`;
}

/** A key pair and its public key as SPKI PEM. */
export interface PemPair {
  privateKey: CryptoKey;
  publicKey: CryptoKey;
  publicPem: string;
}

export async function rsaPair(bits = 2048): Promise<PemPair> {
  const pair = await crypto.subtle.generateKey(
    {
      name: "RSASSA-PKCS1-v1_5",
      modulusLength: bits,
      publicExponent: new Uint8Array([1, 0, 1]),
      hash: "SHA-256",
    },
    true,
    ["sign", "verify"],
  );
  const spki = await crypto.subtle.exportKey("spki", pair.publicKey);
  return { ...pair, publicPem: pem("PUBLIC KEY", spki) };
}

export async function ecPair(): Promise<PemPair> {
  const pair = await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, true, [
    "sign",
    "verify",
  ]);
  const spki = await crypto.subtle.exportKey("spki", pair.publicKey);
  return { ...pair, publicPem: pem("PUBLIC KEY", spki) };
}
