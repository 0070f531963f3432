/**
 * Which settings of the `comet` command go together, and which exposures
 * it refuses. {@linkcode parseConfig} runs the first; the CLI runs
 * {@linkcode checkExposure} on the result.
 *
 * @module
 */
import { isLoopback } from "./auth/open_guard.ts";
import type { AuthMode, CliConfig } from "./cli_config.ts";
import { ConfigError } from "./config_error.ts";
import { formatAddr } from "./config_values.ts";
import { DEFAULTS } from "./defaults.ts";
import type { SettingNames } from "./config_names.ts";

/** @internal The flags that only mean something with one auth mode, in the order they are reported. */
export const AUTH_FLAGS: readonly (readonly [keyof CliConfig, string, AuthMode])[] = [
  ["jwtSecret", "jwt-secret", "jwt"],
  ["jwtPublicKey", "jwt-public-key", "jwt"],
  ["jwtAlg", "jwt-alg", "jwt"],
  ["jwtIssuer", "jwt-issuer", "jwt"],
  ["jwtAudience", "jwt-audience", "jwt"],
  ["webhookUrl", "webhook-url", "webhook"],
  ["webhookTimeout", "webhook-timeout", "webhook"],
  ["webhookSecret", "webhook-secret", "webhook"],
  ["webhookConcurrency", "webhook-concurrency", "webhook"],
];

/**
 * @internal Refuses settings that do not go together, naming each setting
 * the way it was given.
 *
 * @throws {ConfigError} Naming the settings and what they need.
 */
export function checkCombinations(cfg: CliConfig, names: SettingNames): void {
  _checkAuth(cfg, names);
  if (cfg.traceMids.length > 0 && (cfg.log === "warn" || cfg.log === "error")) {
    throw new ConfigError(
      `${names.of("trace-mid")} logs at info: it needs ${
        names.is("log", "info")
      } or debug, not ${cfg.log}`,
    );
  }
  if ((cfg.tlsCert === undefined) !== (cfg.tlsKey === undefined)) {
    throw new ConfigError(`TLS needs both ${names.of("tls-cert")} and ${names.of("tls-key")}`);
  }
  if (cfg.tlsCert === undefined && (cfg.tcpTls || cfg.wss)) {
    throw new ConfigError(
      `${names.of(cfg.tcpTls ? "tcp-tls" : "wss")} needs ${names.of("tls-cert")} and ${
        names.of("tls-key")
      }`,
    );
  }
  if (cfg.redis === undefined) {
    for (
      const [value, flag] of [[cfg.sessionTtl, "session-ttl"], [
        cfg.reportInterval,
        "report-interval",
      ]] as const
    ) {
      if (value !== undefined) {
        throw new ConfigError(`${names.of(flag)} needs ${names.of("redis")}`);
      }
    }
  }
}

function _checkAuth(cfg: CliConfig, names: SettingNames): void {
  for (const [field, flag, mode] of AUTH_FLAGS) {
    if (cfg[field] !== undefined && cfg.auth !== mode) {
      throw new ConfigError(`${names.of(flag)} needs ${names.is("auth", mode)}`);
    }
  }
  if (cfg.insecureOpenAuth && cfg.auth !== "open") {
    throw new ConfigError(
      `${names.of("insecure-open-auth")} is for ${names.is("auth", "open")}, not ${
        names.is("auth", cfg.auth)
      }`,
    );
  }
  if (cfg.auth === "jwt") {
    if (cfg.jwtSecret !== undefined && cfg.jwtPublicKey !== undefined) {
      throw new ConfigError(
        `${names.of("jwt-secret")} and ${names.of("jwt-public-key")} exclude each other: give one`,
      );
    }
    if (cfg.jwtSecret === undefined && cfg.jwtPublicKey === undefined) {
      const keys = names.env
        ? "COMET_JWT_SECRET or COMET_JWT_PUBLIC_KEY"
        : "--jwt-secret (or COMET_JWT_SECRET) or --jwt-public-key FILE";
      throw new ConfigError(`${names.is("auth", "jwt")} needs a key: ${keys}`);
    }
    cfg.jwtAlg ??= cfg.jwtSecret !== undefined ? "HS256" : "RS256";
    if (cfg.jwtAlg === "HS256" && cfg.jwtSecret === undefined) {
      throw new ConfigError(
        `${names.is("jwt-alg", "HS256")} needs ${names.of("jwt-secret")}, not a public key`,
      );
    }
    if (cfg.jwtAlg !== "HS256" && cfg.jwtPublicKey === undefined) {
      throw new ConfigError(
        `${names.is("jwt-alg", cfg.jwtAlg)} needs ${names.of("jwt-public-key")}, not a secret`,
      );
    }
  }
  if (cfg.auth === "webhook" && cfg.webhookUrl === undefined) {
    throw new ConfigError(`${names.is("auth", "webhook")} needs ${names.of("webhook-url")}`);
  }
}

/**
 * Refuses a configuration that would expose what must not be exposed: open
 * auth (any client may claim any user) on a client listener other hosts
 * can reach, unless `--insecure-open-auth`; and the push API without a
 * token on such an address. The `comet` command runs it after
 * {@linkcode parseConfig}.
 *
 * @throws {ConfigError} Naming the address and the way out.
 *
 * @example
 * ```ts
 * import { checkExposure, ConfigError, parseConfig } from "./config.ts";
 *
 * checkExposure(parseConfig(["--tcp", "127.0.0.1:3101"])); // loopback: fine
 * try {
 *   checkExposure(parseConfig(["--tcp", ":3101"]));
 * } catch (err) {
 *   console.log(err instanceof ConfigError); // true
 * }
 * ```
 */
export function checkExposure(cfg: CliConfig): void {
  if (cfg.auth === "open" && !cfg.insecureOpenAuth) {
    const tls = cfg.tlsCert !== undefined;
    const listeners = [
      cfg.tcp,
      cfg.ws,
      tls && cfg.tcpTls,
      tls && (cfg.wss ?? DEFAULTS.wss),
      cfg.pkg,
    ];
    for (const addr of listeners) {
      if (addr && !isLoopback(addr.hostname ?? DEFAULTS.hostname)) {
        throw new ConfigError(
          `Open auth lets any client claim any user; refusing to listen on ${
            formatAddr({ hostname: addr.hostname ?? DEFAULTS.hostname, port: addr.port })
          }: use --auth jwt or --auth webhook, or pass --insecure-open-auth`,
        );
      }
    }
  }
  if (cfg.api && cfg.apiToken === undefined && !isLoopback(cfg.api.hostname ?? DEFAULTS.hostname)) {
    throw new ConfigError(
      `A push API without a token lets anyone push to every client; refusing to listen on ${
        formatAddr({ hostname: cfg.api.hostname ?? DEFAULTS.hostname, port: cfg.api.port })
      }: set --api-token (or COMET_API_TOKEN)`,
    );
  }
}
