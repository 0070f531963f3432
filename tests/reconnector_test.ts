// The shared reconnect lifecycle (src/reconnect/reconnector.ts) with fake connections: no sockets.
import assert from "node:assert/strict";
import { reconnectPolicy } from "../src/reconnect/backoff.ts";
import {
  Reconnector,
  type ReconnectorOptions,
  type ReconnectStateChange,
} from "../src/reconnect/reconnector.ts";

const delay = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

async function until(check: () => boolean, what: string, timeout = 2_000): Promise<void> {
  const deadline = Date.now() + timeout;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await delay(2);
  }
}

/** A connection that ends when closed, from either side. */
class FakeConn {
  readonly closed: Promise<Error>;
  ended: Error | undefined;
  #resolve!: (reason: Error) => void;

  constructor() {
    this.closed = new Promise((resolve) => this.#resolve = resolve);
  }

  close(reason: Error): void {
    if (this.ended !== undefined) return;
    this.ended = reason;
    this.#resolve(reason);
  }
}

type Outcome = "up" | Error | "hang";

/**
 * A reconnector whose connect() plays `outcomes` in turn (the last one
 * repeats): a connection, a failure, or an attempt that waits for its signal.
 */
function harness(
  outcomes: Outcome[],
  options: Partial<ReconnectorOptions<FakeConn, "open">> = {},
) {
  const conns: FakeConn[] = [];
  const attempts: number[] = [];
  const events: string[] = [];
  const changes: ReconnectStateChange<"open">[] = [];
  const errors: Error[] = [];
  const started = performance.now();
  const life: Reconnector<FakeConn, "open"> = new Reconnector<FakeConn, "open">({
    upState: "open",
    policy: reconnectPolicy({ initialDelay: 20, maxDelay: 200, jitter: 0 }),
    connectTimeout: 1_000,
    connect: (signal) => {
      const outcome = outcomes[Math.min(attempts.length, outcomes.length - 1)]!;
      attempts.push(performance.now() - started);
      if (outcome === "up") {
        const conn = new FakeConn();
        conns.push(conn);
        return Promise.resolve(conn);
      }
      if (outcome === "hang") {
        return new Promise((_, reject) => {
          signal.addEventListener("abort", () => reject(signal.reason), { once: true });
        });
      }
      return Promise.reject(outcome);
    },
    attach: () => void events.push(`attach while ${life.state}`),
    onUp: (_conn, reconnected) => void events.push(reconnected ? "up again" : "up"),
    onDown: (_conn, reason) => void events.push(`down: ${reason.message}`),
    teardown: async (reason, stopped) => {
      events.push(`teardown while ${life.state}: ${reason.message}`);
      for (const conn of conns) conn.close(reason);
      await stopped;
    },
    timedOut: (ms) => new Error(`Timed out after ${ms} ms`),
    gaveUp: (n, last) => new Error(`Gave up after ${n} attempts: ${last.message}`, { cause: last }),
    aborted: (cause) => ({ reason: new Error("Aborted", { cause }) }),
    ...options,
  });
  life.onState((change) => changes.push(change));
  life.onError((error) => errors.push(error));
  return { life, conns, attempts, events, changes, errors };
}

Deno.test("nothing happens before start(), and start() twice is refused", async () => {
  const { life, attempts } = harness(["up"]);
  await delay(10);
  assert.equal(life.state, "connecting");
  assert.equal(attempts.length, 0);
  life.start();
  assert.throws(() => life.start(), TypeError);
  await life.ready;
  await life.close(new Error("Done"));
});

Deno.test("the first connection is attached, then the state turns up and ready resolves", async () => {
  const { life, events, changes } = harness(["up"]);
  life.start();
  await life.ready;
  assert.equal(life.state, "open");
  assert.deepEqual(events, ["attach while connecting", "up"]);
  assert.deepEqual(changes, [{ state: "open", previous: "connecting" }]);
  await life.close(new Error("Done"));
  assert.equal(life.state, "closed");
  assert.deepEqual(events.slice(2), ["teardown while open: Done", "down: Done"]);
});

Deno.test("a failed first connect closes with its error and is not retried", async () => {
  const refused = new Error("Refused");
  const { life, attempts, errors, changes } = harness([refused]);
  life.start();
  await assert.rejects(life.ready, (err) => err === refused);
  await until(() => life.state === "closed", "closed");
  await delay(60);
  assert.equal(attempts.length, 1);
  assert.equal(errors.length, 0, "the caller hears of it through ready, not onError");
  assert.equal(changes.at(-1)?.reason, refused);
});

Deno.test("with retryFirst, a failed connect is reported and retried after the backoff delay", async () => {
  const { life, attempts, errors } = harness([new Error("Down"), new Error("Down"), "up"], {
    retryFirst: true,
  });
  life.start();
  await life.ready;
  assert.equal(attempts.length, 3);
  assert.deepEqual(errors.map((e) => e.message), ["Down", "Down"]);
  // reconnectDelay(1) = 40 ms, then reconnectDelay(2) = 80 ms, without jitter.
  assert.ok(attempts[1]! - attempts[0]! >= 38, `first retry after ${attempts[1]! - attempts[0]!}`);
  assert.ok(attempts[2]! - attempts[1]! >= 78, `second retry after ${attempts[2]! - attempts[1]!}`);
  await life.close(new Error("Done"));
});

Deno.test("a dropped connection goes reconnecting, waits the first delay, and comes back up", async () => {
  const { life, conns, attempts, events, changes } = harness(["up"]);
  life.start();
  await life.ready;
  conns[0]!.close(new Error("Peer left"));
  await until(() => conns.length === 2 && life.state === "open", "the second connection");
  // reconnectDelay(0) = 20 ms.
  assert.ok(attempts[1]! - attempts[0]! >= 18);
  assert.deepEqual(changes.map((c) => c.state), ["open", "reconnecting", "open"]);
  assert.equal(changes[1]!.reason?.message, "Peer left");
  assert.deepEqual(events, [
    "attach while connecting",
    "up",
    "down: Peer left",
    "attach while reconnecting",
    "up again",
  ]);
  await life.close(new Error("Done"));
});

Deno.test("close during a backoff wait ends at once without another attempt", async () => {
  const { life, conns, attempts } = harness(["up"], {
    policy: reconnectPolicy({ initialDelay: 5_000, jitter: 0 }),
  });
  life.start();
  await life.ready;
  conns[0]!.close(new Error("Peer left"));
  await until(() => life.state === "reconnecting", "reconnecting");
  const closing = performance.now();
  await life.close(new Error("Done"));
  assert.ok(performance.now() - closing < 1_000, "the wait does not hold close() up");
  assert.equal(life.state, "closed");
  await delay(30);
  assert.equal(attempts.length, 1);
});

Deno.test("close during an attempt aborts the attempt's signal", async () => {
  const { life, attempts, changes } = harness(["hang"]);
  life.start();
  await until(() => attempts.length === 1, "the attempt");
  await life.close(new Error("Done"));
  await assert.rejects(life.ready, /Done/);
  assert.deepEqual(changes.map((c) => c.state), ["closed"]);
});

Deno.test("an attempt past connectTimeout aborts with timedOut's error", async () => {
  const { life } = harness(["hang"], { connectTimeout: 30 });
  life.start();
  await assert.rejects(life.ready, /^Error: Timed out after 30 ms$/);
});

Deno.test("after maxAttempts failed reconnects in a row it gives up with gaveUp's error", async () => {
  const { life, conns, attempts, errors, changes } = harness(["up", new Error("Down")], {
    policy: reconnectPolicy({ initialDelay: 1, maxDelay: 5, jitter: 0, maxAttempts: 3 }),
  });
  life.start();
  await life.ready;
  conns[0]!.close(new Error("Peer left"));
  await until(() => life.state === "closed", "closed");
  assert.equal(attempts.length, 4);
  assert.equal(errors.length, 3);
  const closed = changes.at(-1)!;
  assert.equal(closed.reason?.message, "Gave up after 3 attempts: Down");
});

Deno.test("an error that final() picks is not retried, even after a drop", async () => {
  const refused = new Error("Refused");
  const { life, conns, attempts, changes } = harness(["up", refused], {
    final: (error) => error === refused,
  });
  life.start();
  await life.ready;
  conns[0]!.close(new Error("Peer left"));
  await until(() => life.state === "closed", "closed");
  await delay(60);
  assert.equal(attempts.length, 2);
  assert.equal(changes.at(-1)?.reason, refused);
});

Deno.test("without a policy, a drop closes with the drop's reason", async () => {
  const { life, conns, changes } = harness(["up"], { policy: false });
  life.start();
  await life.ready;
  life.down(new Error("Ignored"));
  assert.equal(life.state, "open", "down() says nothing when it will not reconnect");
  conns[0]!.close(new Error("Peer left"));
  await until(() => life.state === "closed", "closed");
  assert.deepEqual(changes.map((c) => c.state), ["open", "closed"]);
  assert.equal(changes.at(-1)?.reason?.message, "Peer left");
});

Deno.test("down() says reconnecting at once, before the loop notices", async () => {
  const { life, conns, changes } = harness(["up"]);
  life.start();
  await life.ready;
  const lost = new Error("Heartbeat missed");
  life.down(lost);
  assert.equal(life.state, "reconnecting");
  conns[0]!.close(lost);
  await until(() => life.state === "open", "open again");
  assert.deepEqual(changes.map((c) => c.state), ["open", "reconnecting", "open"]);
  await life.close(new Error("Done"));
});

Deno.test("closedFirst turns closed before the teardown; by default it turns after", async () => {
  for (const closedFirst of [false, true]) {
    const { life, events } = harness(["up"], { closedFirst });
    life.start();
    await life.ready;
    const closing = life.close(new Error("Done"));
    assert.equal(life.closing, true);
    assert.equal(life.state, closedFirst ? "closed" : "open");
    assert.equal(life.close(new Error("Again")), closing, "close() is idempotent");
    await closing;
    assert.equal(life.state, "closed");
    assert.ok(events.includes(`teardown while ${closedFirst ? "closed" : "open"}: Done`));
  }
});

Deno.test("aborting the signal closes with aborted()'s reason; ready rejects as it says", async () => {
  const controller = new AbortController();
  const { life, changes } = harness(["up"], {
    signal: controller.signal,
    aborted: (cause) => ({ reason: new Error("Aborted", { cause }), ready: cause }),
  });
  life.start();
  await life.ready;
  const why = new Error("Changed my mind");
  controller.abort(why);
  await until(() => life.state === "closed", "closed");
  assert.equal(changes.at(-1)?.reason?.message, "Aborted");
  assert.equal(changes.at(-1)?.reason?.cause, why);

  const early = new AbortController();
  early.abort(why);
  const { life: never, attempts } = harness(["up"], {
    signal: early.signal,
    aborted: (cause) => ({ reason: new Error("Aborted", { cause }), ready: cause }),
  });
  never.start();
  await assert.rejects(never.ready, (err) => err === why);
  assert.equal(never.state, "closed");
  assert.equal(attempts.length, 0);

  // Without a `ready` of its own, ready rejects with the close reason.
  const plain = harness(["hang"], { signal: early.signal });
  plain.life.start();
  await assert.rejects(plain.life.ready, /^Error: Aborted$/);
});

Deno.test("a state listener that throws is reported to the error listeners", async () => {
  const { life, errors } = harness(["up"]);
  life.onState(() => {
    throw new Error("Listener broke");
  });
  life.start();
  await life.ready;
  assert.deepEqual(errors.map((e) => e.message), ["Listener broke"]);
  await life.close(new Error("Done"));
});

Deno.test("a listener that closes again on closed (closedFirst) gets the same close, and one teardown", async () => {
  const { life, events } = harness(["up"], { closedFirst: true });
  let again: Promise<void> | undefined;
  let closingSeen: boolean | undefined;
  life.onState(({ state }) => {
    if (state !== "closed") return;
    closingSeen = life.closing;
    again = life.close(new Error("Again"));
  });
  life.start();
  await life.ready;
  const closing = life.close(new Error("Done"));
  assert.equal(again, closing);
  assert.equal(closingSeen, true);
  await closing;
  assert.deepEqual(events.filter((e) => e.startsWith("teardown")), ["teardown while closed: Done"]);
});
