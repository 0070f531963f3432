// A self-signed certificate made at test time, for the TLS, WSS and rediss tests.
import { commandAnswers } from "./_process.ts";

/** Whether an `openssl` binary answers. */
export function opensslAvailable(): Promise<boolean> {
  return commandAnswers("openssl", ["version"]);
}

/** A fresh self-signed EC P-256 certificate for 127.0.0.1 and localhost, valid a day. */
export async function makeCertificate(): Promise<{ cert: string; key: string }> {
  const dir = await Deno.makeTempDir({ prefix: "comet_tls_" });
  try {
    const out = await new Deno.Command("openssl", {
      args: [
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=localhost",
        "-addext",
        "subjectAltName=IP:127.0.0.1,DNS:localhost",
        // rustls refuses a CA certificate as the server's own (openssl's default is CA:TRUE).
        "-addext",
        "basicConstraints=critical,CA:FALSE",
        "-keyout",
        `${dir}/key.pem`,
        "-out",
        `${dir}/cert.pem`,
      ],
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).output();
    if (!out.success) {
      throw new Error(`openssl failed: ${new TextDecoder().decode(out.stderr)}`);
    }
    return {
      cert: await Deno.readTextFile(`${dir}/cert.pem`),
      key: await Deno.readTextFile(`${dir}/key.pem`),
    };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}
