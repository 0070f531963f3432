/**
 * The hub a configuration asks for: the operator `auth` names (a JWT key
 * imported and so checked, a webhook client), the limits and the hub's
 * settings. The `comet` command and the edge entry both build their hub
 * with it, so a setting of the hub means the same to both.
 *
 * @module
 */
import { JwtOperator } from "./auth/jwt_operator.ts";
import { WebhookOperator } from "./auth/webhook_operator.ts";
import type { CliConfig } from "./config.ts";
import { ConfigError } from "./config_error.ts";
import type { Logger } from "./log.ts";
import type { CometOptions } from "./server/comet.ts";
import type { Operator } from "./server/operator.ts";

/** Options for {@linkcode cometOptionsFromConfig}. */
export interface CometOptionsFromConfigOptions {
  /** Where the hub and the webhook client log. */
  logger: Logger;
  /** Aborting ends the webhook calls still in flight. Default: never. */
  signal?: AbortSignal;
  /** Reads the `--jwt-public-key` file. Default: `Deno.readTextFileSync`. */
  readFile?: (path: string) => string;
  /** How messages name a flag: `--jwt-public-key` by default, a variable at the edge. */
  name?: (flag: string) => string;
}

/**
 * The options of a {@linkcode Comet} for `cfg`: the hub's settings, its
 * limits, its logger and, unless `cfg.auth` is `open`, its operator, ready
 * to serve (a JWT key is imported before anything listens).
 *
 * @throws {ConfigError} When a key file cannot be read or a key or the
 * webhook settings cannot be used.
 *
 * @example
 * ```ts
 * import { cometOptionsFromConfig } from "./comet_options.ts";
 * import { parseConfig } from "./config.ts";
 * import { silentLogger } from "./log.ts";
 * import { Comet } from "./server/comet.ts";
 *
 * const cfg = parseConfig(["--upstream-rate", "10"]);
 * await using comet = new Comet(await cometOptionsFromConfig(cfg, { logger: silentLogger }));
 * ```
 */
export async function cometOptionsFromConfig(
  cfg: CliConfig,
  options: CometOptionsFromConfigOptions,
): Promise<CometOptions> {
  const operator = await _operator(cfg, options);
  return {
    handshakeTimeout: cfg.handshakeTimeout,
    heartbeatTimeout: cfg.heartbeatTimeout,
    maxBody: cfg.maxBody,
    buckets: cfg.buckets,
    queueSize: cfg.queueSize,
    writeConcurrency: cfg.writeConcurrency,
    writeBurst: cfg.writeBurst,
    slow: cfg.slow,
    writeTimeout: cfg.writeTimeout,
    backlog: { maxBytes: cfg.maxBacklog, maxRoomBytes: cfg.roomBacklog },
    limits: cfg.limits,
    traceMids: cfg.traceMids,
    logger: options.logger,
    ...(operator !== undefined && { operator }),
  };
}

/** The operator `auth` asks for; none for open auth (the hub's default). */
async function _operator(
  cfg: CliConfig,
  options: CometOptionsFromConfigOptions,
): Promise<Operator | undefined> {
  const name = options.name ?? ((flag: string) => `--${flag}`);
  if (cfg.auth === "jwt") {
    let publicKey: string | undefined;
    if (cfg.jwtPublicKey !== undefined) {
      try {
        publicKey = (options.readFile ?? Deno.readTextFileSync)(cfg.jwtPublicKey);
      } catch (err) {
        throw new ConfigError(
          `Cannot read ${name("jwt-public-key")} ${cfg.jwtPublicKey}: ${(err as Error).message}`,
        );
      }
    }
    try {
      const operator = new JwtOperator({
        algorithm: cfg.jwtAlg ?? "HS256",
        ...(cfg.jwtSecret !== undefined && { secret: cfg.jwtSecret }),
        ...(publicKey !== undefined && { publicKey }),
        ...(cfg.jwtIssuer !== undefined && { issuer: cfg.jwtIssuer }),
        ...(cfg.jwtAudience !== undefined && { audience: cfg.jwtAudience }),
      });
      await operator.ready();
      return operator;
    } catch (err) {
      const from = cfg.jwtPublicKey !== undefined ? ` in ${cfg.jwtPublicKey}` : "";
      throw new ConfigError(`Unusable JWT key${from}: ${(err as Error).message}`);
    }
  }
  if (cfg.auth === "webhook") {
    try {
      return new WebhookOperator({
        url: cfg.webhookUrl!,
        logger: options.logger,
        ...(options.signal !== undefined && { signal: options.signal }),
        ...(cfg.webhookTimeout !== undefined && { timeout: cfg.webhookTimeout }),
        ...(cfg.webhookSecret !== undefined && { secret: cfg.webhookSecret }),
        ...(cfg.webhookConcurrency !== undefined && { concurrency: cfg.webhookConcurrency }),
      });
    } catch (err) {
      throw new ConfigError(`Unusable webhook settings: ${(err as Error).message}`);
    }
  }
  return undefined;
}
