// JWT verification: good tokens for each algorithm, every refusal reason,
// algorithm confusion, strict base64url, key handling (PEM, certificates).
import assert from "node:assert/strict";
import { JwtError, type JwtErrorReason, JwtVerifier } from "../src/auth/jwt.ts";
import { b64url, ecPair, hmacKey, nowSeconds, pem, rsaPair, SECRET, sign } from "./_jwt.ts";

const rsa = await rsaPair();
const ec = await ecPair();
const hmac = await hmacKey();

async function refused(
  verifier: JwtVerifier,
  token: string,
  reason: JwtErrorReason,
  message?: RegExp,
): Promise<void> {
  await assert.rejects(verifier.verify(token), (err: unknown) => {
    assert.ok(err instanceof JwtError, `expected JwtError, got ${err}`);
    assert.equal(err.reason, reason, `reason of "${err.message}"`);
    assert.equal(err.name, "JwtError");
    if (message) assert.match(err.message, message);
    return true;
  });
}

function hs(options: Partial<ConstructorParameters<typeof JwtVerifier>[0]> = {}): JwtVerifier {
  return new JwtVerifier({ algorithm: "HS256", secret: SECRET, ...options });
}

const exp = () => nowSeconds() + 600;

Deno.test("jwt: HS256, RS256 and ES256 tokens verify and return their claims", async () => {
  const claims = { sub: "42", room: "live://1", exp: exp(), iat: nowSeconds() };
  assert.deepEqual(await hs().verify(await sign("HS256", hmac, claims)), claims);
  const rs = new JwtVerifier({ algorithm: "RS256", publicKey: rsa.publicPem });
  await rs.ready();
  assert.deepEqual(await rs.verify(await sign("RS256", rsa.privateKey, claims)), claims);
  const es = new JwtVerifier({ algorithm: "ES256", publicKey: ec.publicPem });
  assert.deepEqual(await es.verify(await sign("ES256", ec.privateKey, claims)), claims);
  // A CryptoKey works as well as PEM.
  const esKey = new JwtVerifier({ algorithm: "ES256", publicKey: ec.publicKey });
  assert.equal((await esKey.verify(await sign("ES256", ec.privateKey, claims))).sub, "42");
  // Bytes work as well as a string secret.
  const bytes = new TextEncoder().encode(SECRET);
  const hsBytes = new JwtVerifier({ algorithm: "HS256", secret: bytes });
  assert.equal((await hsBytes.verify(await sign("HS256", hmac, claims))).sub, "42");
});

Deno.test("jwt: expired tokens are refused, within the clock skew they pass", async () => {
  const now = Date.now();
  const v = hs({ now: () => now, clockSkew: 30_000 });
  const t = (s: number) => sign("HS256", hmac, { sub: "1", exp: Math.floor(now / 1000) + s });
  await refused(v, await t(-60), "expired", /^Token has expired: at \d{4}-/);
  assert.equal((await v.verify(await t(-10))).sub, "1");
  await refused(hs({ now: () => now, clockSkew: 0 }), await t(-1), "expired");
  // exp is the first instant the token is no longer valid (RFC 7519 §4.1.4).
  const exact = hs({ now: () => 2_000_000, clockSkew: 0 });
  await refused(exact, await sign("HS256", hmac, { exp: 2000 }), "expired");
  assert.ok(await exact.verify(await sign("HS256", hmac, { exp: 2000.5 })));
});

Deno.test("jwt: nbf and iat in the future are not valid yet", async () => {
  const v = hs({ clockSkew: 5_000 });
  await refused(
    v,
    await sign("HS256", hmac, { exp: exp(), nbf: nowSeconds() + 60 }),
    "not_yet_valid",
    /^Token is not valid yet: from /,
  );
  await refused(
    v,
    await sign("HS256", hmac, { exp: exp(), iat: nowSeconds() + 60 }),
    "not_yet_valid",
    /issued in the future/,
  );
  assert.ok(await v.verify(await sign("HS256", hmac, { exp: exp(), nbf: nowSeconds() + 2 })));
});

Deno.test("jwt: maxAge refuses old tokens and needs iat", async () => {
  const v = hs({ maxAge: 60_000, clockSkew: 0 });
  assert.ok(await v.verify(await sign("HS256", hmac, { exp: exp(), iat: nowSeconds() - 30 })));
  await refused(
    v,
    await sign("HS256", hmac, { exp: exp(), iat: nowSeconds() - 120 }),
    "expired",
    /too old/,
  );
  await refused(v, await sign("HS256", hmac, { exp: exp() }), "claims", /no iat/);
});

Deno.test("jwt: a wrong key or a tampered token fails the signature", async () => {
  const other = await hmacKey("another secret that is also long enough!!");
  await refused(
    hs(),
    await sign("HS256", other, { exp: exp() }),
    "bad_signature",
    /^Token signature is invalid$/,
  );
  const good = await sign("HS256", hmac, { sub: "1", exp: exp() });
  const [h, , s] = good.split(".");
  const tampered = `${h}.${b64url(JSON.stringify({ sub: "2", exp: exp() }))}.${s}`;
  await refused(hs(), tampered, "bad_signature");
  // One flipped bit in the signature.
  const last = s!.at(-2) === "A" ? "B" : "A";
  await refused(
    hs(),
    `${h}.${good.split(".")[1]}.${s!.slice(0, -2)}${last}${s!.at(-1)}`,
    "bad_signature",
  );

  const rs = new JwtVerifier({ algorithm: "RS256", publicKey: rsa.publicPem });
  const otherRsa = await rsaPair();
  await refused(rs, await sign("RS256", otherRsa.privateKey, { exp: exp() }), "bad_signature");
  const es = new JwtVerifier({ algorithm: "ES256", publicKey: ec.publicPem });
  const otherEc = await ecPair();
  await refused(es, await sign("ES256", otherEc.privateKey, { exp: exp() }), "bad_signature");
});

Deno.test("jwt: signatures of the wrong length are refused before verifying", async () => {
  const parts = async (alg: "HS256" | "RS256" | "ES256", key: CryptoKey) => {
    const [h, p] = (await sign(alg, key, { exp: exp() })).split(".");
    return `${h}.${p}`;
  };
  const es = new JwtVerifier({ algorithm: "ES256", publicKey: ec.publicPem });
  // A DER-encoded ECDSA signature (what some libraries emit) is not JWS's r||s.
  const der = new Uint8Array(70).fill(1);
  const esInput = await parts("ES256", ec.privateKey);
  await refused(es, `${esInput}.${b64url(der)}`, "bad_signature", /not 64 bytes: 70/);
  await refused(es, `${esInput}.`, "bad_signature", /not 64 bytes: 0/);
  const rs = new JwtVerifier({ algorithm: "RS256", publicKey: rsa.publicPem });
  const rsInput = await parts("RS256", rsa.privateKey);
  await refused(rs, `${rsInput}.${b64url(new Uint8Array(255))}`, "bad_signature", /not 256 bytes/);
  const hsInput = await parts("HS256", hmac);
  await refused(hs(), `${hsInput}.${b64url(new Uint8Array(31))}`, "bad_signature", /not 32 bytes/);
});

Deno.test("jwt: the header's alg must be the configured one", async () => {
  const payload = { sub: "1", exp: exp() };
  const body = b64url(JSON.stringify(payload));
  // alg none, with and without a signature part.
  const none = b64url(JSON.stringify({ alg: "none", typ: "JWT" }));
  await refused(
    hs(),
    `${none}.${body}.`,
    "wrong_algorithm",
    /^Token algorithm must be HS256: none$/,
  );
  await refused(hs(), `${none}.${body}.${b64url("x")}`, "wrong_algorithm");
  const rs = new JwtVerifier({ algorithm: "RS256", publicKey: rsa.publicPem });
  await refused(rs, `${none}.${body}.`, "wrong_algorithm");
  // No alg at all.
  const bare = b64url(JSON.stringify({ typ: "JWT" }));
  await refused(hs(), `${bare}.${body}.${b64url("x")}`, "wrong_algorithm", /none given/);
  // Case matters: "hs256" is not HS256.
  const lower = await sign("HS256", hmac, payload, { alg: "hs256" });
  await refused(hs(), lower, "wrong_algorithm");

  // The classic confusion: an HS256 token MACed with the RSA public key's PEM as the
  // secret, sent to a verifier configured for RS256 with that very PEM.
  const confused = await sign("HS256", await hmacKey(rsa.publicPem), payload);
  await refused(rs, confused, "wrong_algorithm", /must be RS256: HS256/);
  const es = new JwtVerifier({ algorithm: "ES256", publicKey: ec.publicPem });
  await refused(es, await sign("HS256", await hmacKey(ec.publicPem), payload), "wrong_algorithm");
  // And the other way round: an RS256 token to an HS256 verifier.
  await refused(hs(), await sign("RS256", rsa.privateKey, payload), "wrong_algorithm");
  // ES256 token, RS256 verifier.
  await refused(rs, await sign("ES256", ec.privateKey, payload), "wrong_algorithm");
});

Deno.test("jwt: malformed tokens are refused by shape and strict base64url", async () => {
  const v = hs();
  const good = await sign("HS256", hmac, { exp: exp() });
  const [h, p, s] = good.split(".") as [string, string, string];
  const cases: [string, RegExp][] = [
    ["", /three base64url parts/],
    ["abc", /three base64url parts/],
    [`${h}.${p}`, /three base64url parts/],
    [`${h}.${p}.${s}.${s}`, /three base64url parts/],
    [`${h}..${s}`, /three base64url parts/],
    [` ${good}`, /three base64url parts/],
    [`${h}.${p}.${s}=`, /three base64url parts/], // padding
    [`${h}.${p.replace(/.$/, "+")}.${s}`, /three base64url parts/], // standard alphabet
    [`${h}.${p}.${s}\n`, /three base64url parts/],
    [`${h}.${p}x.${s}`, /payload is not valid base64url/], // length 4n+1
    [`${b64url("not json")}.${p}.${s}`, /header is not UTF-8 JSON/],
    [`${b64url("[1]")}.${p}.${s}`, /header is not a JSON object/],
    [`${b64url(new Uint8Array([0xff, 0xfe]))}.${p}.${s}`, /header is not UTF-8 JSON/],
  ];
  for (const [token, message] of cases) await refused(v, token, "malformed", message);
  // Non-canonical: "eyJ" + a last char with stray low bits decodes like its canonical twin.
  const header = b64url(JSON.stringify({ alg: "HS256" }) + " "); // 16 bytes: 4 spare bits
  const spare = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  const lastIndex = spare.indexOf(header.at(-1)!);
  assert.equal(header.length % 4, 2);
  const twin = header.slice(0, -1) + spare[lastIndex + 1];
  await refused(v, `${twin}.${p}.${s}`, "malformed", /not canonical/);
  // Over the length limit.
  await refused(hs({ maxLength: 64 }), good, "malformed", /longer than 64 characters/);
  // Not a string.
  await refused(v, 42 as unknown as string, "malformed");
});

Deno.test("jwt: a verified payload that is not a JSON object is malformed", async () => {
  const input = `${b64url(JSON.stringify({ alg: "HS256" }))}.${b64url("[1,2]")}`;
  const mac = await crypto.subtle.sign("HMAC", hmac, new TextEncoder().encode(input));
  await refused(
    hs(),
    `${input}.${b64url(new Uint8Array(mac))}`,
    "malformed",
    /payload is not a JSON object/,
  );
});

Deno.test("jwt: crit extensions are refused", async () => {
  const token = await sign("HS256", hmac, { exp: exp() }, {
    alg: "HS256",
    crit: ["b64"],
    b64: false,
  });
  await refused(hs(), token, "malformed", /unsupported crit/);
});

Deno.test("jwt: exp is required unless configured otherwise, and must be a number", async () => {
  const token = await sign("HS256", hmac, { sub: "1" });
  await refused(hs(), token, "claims", /^Token has no exp claim$/);
  assert.equal((await hs({ requireExp: false }).verify(token)).sub, "1");
  await refused(hs(), await sign("HS256", hmac, { exp: "soon" }), "claims", /exp is not a number/);
  await refused(hs(), await sign("HS256", hmac, { exp: exp(), nbf: null }), "claims", /nbf/);
});

Deno.test("jwt: iss and aud are checked when configured", async () => {
  const v = hs({ issuer: ["https://a.example", "https://b.example"], audience: "comet" });
  const t = (claims: Record<string, unknown>) => sign("HS256", hmac, { exp: exp(), ...claims });
  assert.ok(await v.verify(await t({ iss: "https://b.example", aud: "comet" })));
  assert.ok(await v.verify(await t({ iss: "https://a.example", aud: ["other", "comet"] })));
  await refused(v, await t({ iss: "https://evil.example", aud: "comet" }), "claims", /issuer/);
  await refused(v, await t({ aud: "comet" }), "claims", /issuer is not accepted: none/);
  await refused(v, await t({ iss: "https://a.example", aud: "other" }), "claims", /audience/);
  await refused(v, await t({ iss: "https://a.example" }), "claims", /audience/);
  await refused(v, await t({ iss: "https://a.example", aud: [1] }), "claims", /audience/);
  // A token addressed to someone is refused by a verifier that names no audience.
  await refused(hs(), await t({ aud: "billing" }), "claims", /meant for an audience/);
});

Deno.test("jwt: bad options are refused when the verifier is made", async () => {
  assert.throws(() => hs({ secret: "short" }), RangeError);
  assert.throws(() => new JwtVerifier({ algorithm: "HS256" }), TypeError);
  assert.throws(() => hs({ publicKey: rsa.publicPem }), TypeError);
  assert.throws(
    () => new JwtVerifier({ algorithm: "RS256", secret: SECRET, publicKey: rsa.publicPem }),
    TypeError,
  );
  assert.throws(() => new JwtVerifier({ algorithm: "RS256" }), TypeError);
  for (const alg of ["none", "HS512", "PS256", "", undefined]) {
    assert.throws(
      () => new JwtVerifier({ algorithm: alg as "HS256", secret: SECRET }),
      TypeError,
    );
  }
  assert.throws(() => hs({ clockSkew: -1 }), RangeError);
  assert.throws(() => hs({ maxLength: 0 }), RangeError);
  assert.throws(() => hs({ audience: [] }), TypeError);
  const pkcs8 = await crypto.subtle.exportKey("pkcs8", ec.privateKey);
  assert.throws(
    () => new JwtVerifier({ algorithm: "ES256", publicKey: pem("PRIVATE KEY", pkcs8) }),
    { name: "TypeError", message: /private key/ },
  );
  assert.throws(
    () =>
      new JwtVerifier({ algorithm: "RS256", publicKey: pem("RSA PUBLIC KEY", new Uint8Array(8)) }),
    { name: "TypeError", message: /PKCS#1.*openssl/ },
  );
  assert.throws(() => new JwtVerifier({ algorithm: "RS256", publicKey: "not pem" }), TypeError);
  assert.throws(
    () =>
      new JwtVerifier({
        algorithm: "RS256",
        publicKey: "-----BEGIN PUBLIC KEY-----\n!!\n-----END PUBLIC KEY-----",
      }),
    TypeError,
  );
  assert.throws(() => new JwtVerifier({ algorithm: "ES256", publicKey: "" }), TypeError);
});

Deno.test("jwt: an unusable key is reported by ready() and verify()", async () => {
  // An RSA key for ES256, an EC key for RS256.
  const wrong = new JwtVerifier({ algorithm: "ES256", publicKey: rsa.publicPem });
  await assert.rejects(wrong.ready(), { name: "TypeError", message: /P-256/ });
  await assert.rejects(wrong.verify(await sign("ES256", ec.privateKey, { exp: exp() })), TypeError);
  const wrong2 = new JwtVerifier({ algorithm: "RS256", publicKey: ec.publicPem });
  await assert.rejects(wrong2.ready(), { name: "TypeError", message: /RSA/ });
  // An RSA key under 2048 bits.
  const small = await rsaPair(1024);
  const weak = new JwtVerifier({ algorithm: "RS256", publicKey: small.publicPem });
  await assert.rejects(weak.ready(), { name: "RangeError", message: /2048 bits: 1024/ });
  // CryptoKeys: a private key, or one for another algorithm.
  await assert.rejects(
    new JwtVerifier({ algorithm: "ES256", publicKey: ec.privateKey }).ready(),
    TypeError,
  );
  await assert.rejects(
    new JwtVerifier({ algorithm: "RS256", publicKey: ec.publicKey }).ready(),
    TypeError,
  );
  // An EC key on another curve.
  const p384 = await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-384" }, true, [
    "sign",
    "verify",
  ]);
  const spki384 = pem("PUBLIC KEY", await crypto.subtle.exportKey("spki", p384.publicKey));
  await assert.rejects(
    new JwtVerifier({ algorithm: "ES256", publicKey: spki384 }).ready(),
    TypeError,
  );
});

Deno.test("jwt: the key is imported once, not per token", async () => {
  const subtle = crypto.subtle as SubtleCrypto & { importKey: SubtleCrypto["importKey"] };
  const original = subtle.importKey;
  let imports = 0;
  Object.defineProperty(subtle, "importKey", {
    configurable: true,
    writable: true,
    value: (...args: Parameters<SubtleCrypto["importKey"]>) => {
      imports++;
      return (original as (...a: unknown[]) => Promise<CryptoKey>).apply(subtle, args);
    },
  });
  try {
    const v = new JwtVerifier({ algorithm: "ES256", publicKey: ec.publicPem });
    const token = await sign("ES256", ec.privateKey, { exp: exp() });
    for (let i = 0; i < 5; i++) await v.verify(token);
    assert.equal(imports, 1);
  } finally {
    delete (subtle as unknown as Record<string, unknown>).importKey;
  }
  assert.equal(crypto.subtle.importKey, original);
});

async function opensslAvailable(): Promise<boolean> {
  try {
    const { success } = await new Deno.Command("openssl", {
      args: ["version"],
      stdout: "null",
      stderr: "null",
    })
      .output();
    return success;
  } catch {
    return false;
  }
}

Deno.test({
  name: "jwt: an X.509 certificate PEM supplies its public key",
  ignore: !(await opensslAvailable()),
  async fn() {
    const dir = await Deno.makeTempDir();
    try {
      for (
        const [alg, keyArgs] of [
          ["ES256", ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]],
          ["RS256", ["-newkey", "rsa:2048"]],
        ] as const
      ) {
        const out = await new Deno.Command("openssl", {
          args: [
            "req",
            "-x509",
            ...keyArgs,
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=comet-test",
            "-keyout",
            `${dir}/${alg}.key`,
            "-out",
            `${dir}/${alg}.crt`,
          ],
          stdout: "null",
          stderr: "piped",
        }).output();
        assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
        const keyPem = await Deno.readTextFile(`${dir}/${alg}.key`);
        const der = Uint8Array.from(
          atob(keyPem.replace(/-----[^-]+-----/g, "").replace(/\s+/g, "")),
          (c) => c.charCodeAt(0),
        );
        const params = alg === "ES256"
          ? { name: "ECDSA", namedCurve: "P-256" }
          : { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" };
        const privateKey = await crypto.subtle.importKey("pkcs8", der, params, false, ["sign"]);
        const cert = await Deno.readTextFile(`${dir}/${alg}.crt`);
        const v = new JwtVerifier({ algorithm: alg, publicKey: cert });
        await v.ready();
        const token = await sign(alg, privateKey, { sub: "9", exp: exp() });
        assert.equal((await v.verify(token)).sub, "9");
        const other = alg === "ES256" ? (await ecPair()).privateKey : (await rsaPair()).privateKey;
        await refused(v, await sign(alg, other, { exp: exp() }), "bad_signature");
      }
      // A truncated certificate is refused when the verifier is made.
      const cert = await Deno.readTextFile(`${dir}/ES256.crt`);
      const body = cert.replace(/-----[^-]+-----/g, "").replace(/\s+/g, "");
      const cut = pem(
        "CERTIFICATE",
        Uint8Array.from(atob(body).slice(0, 100), (c) => c.charCodeAt(0)),
      );
      assert.throws(() => new JwtVerifier({ algorithm: "ES256", publicKey: cut }), TypeError);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
