import assert from "node:assert/strict";
import { encodeFrame } from "../src/protocol/frame.ts";
import { Op } from "../src/protocol/op.ts";
import { Backlog } from "../src/server/backlog.ts";
import { Channel, type SlowPolicy } from "../src/server/channel.ts";
import { Room } from "../src/server/room.ts";
import { WriteScheduler } from "../src/server/write_scheduler.ts";
import { FakeHooks, FakeWire } from "./_fake_wire.ts";
import { mulberry32, randomInt } from "./_random.ts";

const utf8 = new TextEncoder();
const frame = (i: number, op = 1000) => encodeFrame(op, i, utf8.encode(`msg ${i}`));

/** Lets writers run their pending continuations. */
async function tick(): Promise<void> {
  for (let i = 0; i < 10; i++) await Promise.resolve();
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function member(
  room: Room,
  policy: SlowPolicy = "close",
  queueSize = 64,
  writeTimeout = 2_000,
  writes?: WriteScheduler,
) {
  const wire = new FakeWire();
  const hooks = new FakeHooks();
  const channel = new Channel(wire, {
    queueSize,
    slow: policy,
    hooks,
    closeGrace: 250,
    writeTimeout,
    writes,
  });
  channel._open();
  room.add(channel);
  /** `[op, seq]` of every frame written so far, in order. */
  const got = () => wire.framesPerWrite().flat().map((f) => [f.op, f.seq]);
  return { wire, hooks, channel, got };
}

/** Holds `m`'s writes (the one under way included) until the returned function is called. */
function hold(m: { wire: FakeWire }): () => void {
  let open!: () => void;
  m.wire.gate = new Promise<void>((resolve) => (open = resolve));
  return () => {
    m.wire.gate = undefined;
    open();
  };
}

/**
 * Room frame 0 is being written to `m`, held, and frames 1 and 2 wait in
 * the room log for its next write. Returns what lets the writes go.
 */
async function twoBehind(room: Room, m: { wire: FakeWire }): Promise<() => void> {
  const release = hold(m);
  room.push(frame(0));
  await tick();
  room.push(frame(1));
  room.push(frame(2));
  return release;
}

/** Holds and lets go of members' writes at random, then lets every write finish. */
function holds(members: { wire: FakeWire; channel: Channel }[]) {
  const releases: ((() => void) | undefined)[] = members.map(() => undefined);
  return {
    /** Holds member `i`'s writes, or lets them go if held. */
    toggle(i: number): void {
      const release = releases[i];
      releases[i] = release ? undefined : hold(members[i]!);
      release?.();
    },
    /** Lets every write go and waits until nothing is queued. */
    async drain(): Promise<void> {
      releases.forEach((release) => release?.());
      for (let k = 0; k < 20 && members.some((m) => m.channel.queued > 0); k++) {
        await new Promise((resolve) => setTimeout(resolve, 0));
      }
    },
  };
}

Deno.test("room push reaches every member once, in push order", async () => {
  const room = new Room("live://1");
  const a = member(room);
  const b = member(room);
  for (let i = 0; i < 5; i++) assert.equal(room.push(frame(i)), 2);
  await tick();
  const want = [0, 1, 2, 3, 4].map((i) => [1000, i]);
  assert.deepEqual(a.got(), want);
  assert.deepEqual(b.got(), want);
  assert.equal(a.wire.writes.length, 1, "five room frames go out in one write");
  assert.equal(room.backlog, 0, "frames every member has taken are let go of");
});

Deno.test("room push and pushes to one member keep the order they were made in", async () => {
  const room = new Room("live://1");
  const a = member(room);
  const release = hold(a);
  room.push(frame(0));
  await tick(); // frame 0 is being written; the rest queue behind it
  room.push(frame(1));
  a.channel.push(frame(2, 2000));
  room.push(frame(3));
  a.channel.reply(Op.HeartbeatReply, "", 4, 1);
  room.push(frame(5));
  assert.equal(a.channel.queued, 5);
  release();
  await tick();
  assert.deepEqual(a.got(), [
    [1000, 0],
    [1000, 1],
    [2000, 2],
    [1000, 3],
    [Op.HeartbeatReply, 4],
    [1000, 5],
  ]);
});

Deno.test("room member that leaves still gets the frames pushed before, and no later ones", async () => {
  const room = new Room("live://1");
  const a = member(room);
  const b = member(room);
  const release = await twoBehind(room, a);
  room.remove(a.channel);
  assert.equal(a.channel.room, "");
  assert.equal(room.push(frame(3)), 1, "only the member left counts");
  assert.equal(a.channel.queued, 2);
  release();
  await tick();
  assert.deepEqual(a.got(), [[1000, 0], [1000, 1], [1000, 2]]);
  assert.deepEqual(b.got(), [0, 1, 2, 3].map((i) => [1000, i]));

  // Joining again starts at the room's next frame, not at its old place.
  room.add(a.channel);
  room.push(frame(4));
  await tick();
  assert.deepEqual(a.got().at(-1), [1000, 4]);
  assert.equal(a.got().length, 4);
});

Deno.test("room closes a member whose socket refuses writes past the write timeout, no one else", async () => {
  const room = new Room("live://1");
  const slow = member(room, "close", 4, 10);
  const fast = member(room, "close", 4, 10);
  slow.wire.gate = new Promise(() => {}); // the socket never takes the write
  room.push(frame(0));
  await tick(); // the slow member's write of frame 0 is under way
  for (let i = 1; i <= 8; i++) {
    assert.equal(room.push(frame(i)), 2, `push ${i} reaches both`);
    await tick();
  }
  assert.equal(slow.hooks.slowCount, 0, "a full backlog alone does not make a member slow");
  await sleep(20);
  let i = 9;
  while (slow.channel.state === "open" && i < 13) room.push(frame(i++));
  assert.equal(slow.hooks.slowCount, 1, "closed within a queue's worth of pushes");
  assert.equal(slow.channel.state, "closing");
  assert.equal(slow.channel.queued, 1, "what it could not take is let go of; op 6 is tried");
  assert.equal(room.push(frame(i)), 1, "a closing member is not counted");
  await tick();
  assert.deepEqual(fast.got(), Array.from({ length: i + 1 }, (_, n) => [1000, n]));
  assert.equal(fast.hooks.slowCount, 0);
  slow.channel.abort();
  room.remove(slow.channel);
  assert.equal(room.size, 1);
});

Deno.test("room member waiting for the server's turn is never slow, however far behind", async () => {
  // One write at a time: the first member's write holds the place, the second waits in line.
  using writes = new WriteScheduler({ concurrency: 1 });
  const room = new Room("live://1");
  const holder = member(room, "close", 4, 10, writes);
  const waiting = member(room, "close", 4, 10, writes);
  const release = hold(holder);
  room.push(frame(0));
  await tick();
  for (let i = 1; i <= 20; i++) room.push(frame(i));
  await sleep(20);
  for (let i = 21; i <= 40; i++) room.push(frame(i));
  assert.equal(holder.channel.state, "closing", "the member whose socket refuses is slow");
  assert.equal(waiting.channel.state, "open", "the one behind it in line is not");
  assert.equal(waiting.hooks.slowCount, 0);
  assert.equal(waiting.channel.queued, 41);
  release();
  while (waiting.channel.queued > 0) await sleep(1);
  assert.deepEqual(waiting.got(), Array.from({ length: 41 }, (_, n) => [1000, n]));
});

Deno.test("room drop policy keeps a queue's worth for a slow member and drops the rest", async () => {
  const room = new Room("live://1");
  const slow = member(room, "drop", 3, 10);
  const fast = member(room, "drop", 3, 10);
  const release = hold(slow);
  room.push(frame(0));
  await tick();
  for (let i = 1; i <= 6; i++) assert.equal(room.push(frame(i)), 2);
  assert.equal(slow.hooks.dropCount, 0, "not slow before the write timeout");
  await sleep(20);
  let i = 7;
  let reached = 2;
  while (slow.hooks.dropCount === 0 && i < 12) reached = room.push(frame(i++));
  const skipped = i - 1;
  assert.equal(reached, 1, `push ${skipped} is dropped for the slow member`);
  assert.equal(slow.hooks.dropCount, skipped - 3, "frames 4 to the last push");
  assert.equal(slow.channel.queued, 3, "it keeps the oldest queue's worth");
  release();
  assert.equal(room.push(frame(i)), 2, "and takes new pushes");
  while (slow.channel.queued > 0) await sleep(1);
  assert.deepEqual(slow.got(), [0, 1, 2, 3, i].map((n) => [1000, n]));
  await tick();
  assert.deepEqual(fast.got(), Array.from({ length: i + 1 }, (_, n) => [1000, n]));
});

Deno.test("room log counts its bytes, refuses past its cap and frees what every member took", async () => {
  const backlog = new Backlog({ maxRoomBytes: 1000 });
  const room = new Room("live://1", backlog);
  const a = member(room);
  const b = member(room);
  const release = hold(a);
  let pushed = 0;
  let bytes = 0;
  while (room.admits(frame(pushed).length)) {
    bytes += frame(pushed).length;
    room.push(frame(pushed++));
  }
  assert.ok(pushed > 10 && bytes <= 1000 && bytes + frame(pushed).length > 1000);
  assert.equal(room.bytes, bytes);
  assert.equal(backlog.roomBytes, room.bytes, "the hub's count is the room's");
  assert.equal(a.channel.state, "open", "a member not yet slow keeps its place");
  release();
  while (a.channel.queued > 0) await sleep(1);
  await tick();
  assert.equal(room.bytes, 0, "every member took every frame");
  assert.equal(backlog.roomBytes, 0);
  assert.ok(room.admits(frame(pushed).length));
  assert.equal(b.got().length, pushed);
});

Deno.test("room member's close sends the room frames it has not taken before op 6", async () => {
  const room = new Room("live://1");
  const a = member(room);
  const release = await twoBehind(room, a);
  a.channel.close("bye");
  room.push(frame(3));
  release();
  await a.channel._done();
  assert.deepEqual(a.got(), [[1000, 0], [1000, 1], [1000, 2], [Op.DisconnectReply, 0]]);
  assert.equal(a.wire.closes, 1);
});

Deno.test("room members whose wires share an encoding get one encoding of a run", async () => {
  const room = new Room("live://1");
  const shared = {};
  const a = member(room);
  const b = member(room);
  const other = member(room);
  a.wire.sharedEncoding = b.wire.sharedEncoding = shared;
  other.wire.sharedEncoding = {};
  for (let i = 0; i < 3; i++) room.push(frame(i));
  await tick();
  assert.equal(a.wire.encodes.length + b.wire.encodes.length, 1, "one encode for a and b");
  assert.equal(a.wire.writes[0], b.wire.writes[0], "the very same bytes");
  assert.equal(other.wire.encodes.length, 1, "another encoding encodes its own");
  assert.deepEqual(b.got(), [0, 1, 2].map((i) => [1000, i]));

  // A member with frames of its own, or a run ending in op 6, encodes for itself.
  b.channel.push(frame(3, 2000));
  room.push(frame(4));
  room.push(frame(5, Op.DisconnectReply));
  await tick();
  assert.equal(a.wire.encodes.length, 2);
  assert.equal(b.wire.encodes.length, 1);
  assert.notEqual(a.wire.writes[1], b.wire.writes[1]);
  assert.deepEqual(b.got().slice(3), [[2000, 3], [1000, 4], [Op.DisconnectReply, 5]]);
});

Deno.test("room members get exactly their pushes, in order, under random interleavings", async () => {
  for (let seed = 1; seed <= 20; seed++) {
    const rand = mulberry32(seed);
    const room = new Room("live://1");
    // Queues big enough that the slow-consumer policy never applies here.
    const members = [0, 1, 2].map(() => member(room, "close", 10_000));
    // What each member must receive, as [op, seq], in push order.
    const want: number[][][] = members.map(() => []);
    const inRoom = members.map(() => true);
    const writers = holds(members);
    let seq = 0;
    for (let step = 0; step < 200; step++) {
      const i = randomInt(rand, 0, members.length - 1);
      const m = members[i]!;
      const roll = rand();
      if (roll < 0.4) {
        const s = seq++;
        room.push(frame(s));
        members.forEach((_, j) => inRoom[j] && want[j]!.push([1000, s]));
      } else if (roll < 0.55) {
        const s = seq++;
        m.channel.push(frame(s, 2000));
        want[i]!.push([2000, s]);
      } else if (roll < 0.62) {
        const s = seq++;
        m.channel.reply(Op.HeartbeatReply, "", s, 1);
        want[i]!.push([Op.HeartbeatReply, s]);
      } else if (roll < 0.72) {
        if (inRoom[i]) room.remove(m.channel);
        else room.add(m.channel);
        inRoom[i] = !inRoom[i];
      } else if (roll < 0.85) {
        writers.toggle(i);
      } else {
        await tick();
      }
    }
    await writers.drain();
    members.forEach((m, j) => assert.deepEqual(m.got(), want[j], `seed ${seed}, member ${j}`));
    assert.ok(room.backlog <= 64, `seed ${seed}: the log holds ${room.backlog} frames`);
  }
});

Deno.test("room members meet the slow policy only for frames pushed to them alone while their sockets take writes", async () => {
  for (const policy of ["drop", "close"] as const) {
    let applied = 0;
    for (let seed = 1; seed <= 20; seed++) {
      const rand = mulberry32(seed);
      const room = new Room("live://1");
      const capacity = randomInt(rand, 2, 6);
      // Held writes never count as refused here: the write timeout is never reached.
      const members = [0, 1, 2].map(() => member(room, policy, capacity, Infinity));
      const want: number[][][] = members.map(() => []);
      const accepted = members.map(() => 0);
      const closed = members.map(() => false);
      const writers = holds(members);
      const at = (s: number) => `${policy}, seed ${seed}, step ${s}`;
      /** Frames pushed to member `j` alone that its writes have not taken yet. */
      const alone = (j: number) =>
        accepted[j]! - members[j]!.got().filter(([op]) => op === 2000).length;
      let seq = 0;
      for (let step = 0; step < 300; step++) {
        const i = randomInt(rand, 0, members.length - 1);
        const roll = rand();
        if (roll < 0.5) {
          // Room frames wait for the server, not the client: every open member gets them.
          const s = seq++;
          const open = members.filter((_, j) => !closed[j]).length;
          assert.equal(room.push(frame(s)), open, at(step));
          members.forEach((_, j) => !closed[j] && want[j]!.push([1000, s]));
        } else if (roll < 0.7) {
          // The rule: a member holding its capacity of frames pushed to it alone does not get
          // another; under `close` it gets op 6 after what it holds, and nothing more.
          const s = seq++;
          const full = alone(i) >= capacity;
          const queued = members[i]!.channel.push(frame(s, 2000));
          assert.equal(queued, !closed[i] && !full, at(step));
          if (queued) {
            want[i]!.push([2000, s]);
            accepted[i]!++;
          } else if (!closed[i] && policy === "close") {
            want[i]!.push([Op.DisconnectReply, 0]);
            closed[i] = true;
          }
        } else if (roll < 0.85) {
          writers.toggle(i);
        } else {
          await tick();
        }
      }
      await writers.drain();
      members.forEach((m, j) =>
        assert.deepEqual(m.got(), want[j], `${policy}, seed ${seed}, member ${j}`)
      );
      applied += members.reduce((n, m) => n + m.hooks.dropCount + m.hooks.slowCount, 0);
    }
    assert.ok(applied > 0, `the ${policy} policy applied somewhere`);
  }
});
