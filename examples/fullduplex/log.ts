import { UsageError } from "../_cli.ts";

/** Prints one line stamped like Comet's own log: `2026-01-02T15:04:05.000Z [server] ...`. */
export function log(side: "server" | "client", message: string): void {
  console.log(`${new Date().toISOString()} [${side}] ${message}`);
}

/**
 * Parses `--speed N` (default 1). Every delay of the example is divided by it,
 * so `--speed 10` plays the ten-second script in one second.
 */
export function parseSpeed(value: string | undefined): number {
  const speed = Number(value ?? 1);
  if (!(speed > 0 && Number.isFinite(speed))) {
    throw new UsageError(`--speed must be a positive number: ${value}`);
  }
  return speed;
}
