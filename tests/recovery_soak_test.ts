// The recovery soak (bench/recovery_soak.ts) at a size CI can afford: opted-in
// clients cut at random while room and user pushes go on, resuming with what
// they hold. The full-size runs (1,000 clients, 60 s) are in the note.
import assert from "node:assert/strict";
import { redisAvailable } from "./_redis.ts";

const SCRIPT = new URL("../bench/recovery_soak.ts", import.meta.url).pathname;

interface SoakResult {
  published: number;
  recovered: number;
  refused: Record<string, number>;
  replays: { room: number; mid: number; all: number };
  duplicates: number;
  gaps: number;
  misplaced: number;
  lostTail: number;
  lost: number;
  events: string[];
}

async function soak(args: string[]): Promise<{ code: number; result: SoakResult }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--unstable-net", SCRIPT, ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stdout = new TextDecoder().decode(out.stdout).trim();
  const last = stdout.split("\n").at(-1) ?? "";
  assert.ok(
    last.startsWith("{"),
    `no result line:\n${stdout}\n${new TextDecoder().decode(out.stderr)}`,
  );
  return { code: out.code, result: JSON.parse(last) as SoakResult };
}

Deno.test("clients cut inside the window resume with nothing lost, doubled or out of order", async () => {
  const { code, result } = await soak([
    ...["--clients", "120", "--rate", "120", "--duration", "8", "--rooms", "6"],
    ...["--cut-min", "0.5", "--cut-max", "3"],
  ]);
  assert.ok(result.published > 500, `published ${result.published}`);
  assert.ok(result.replays.room > 0, "some room recoveries replayed missed pushes");
  assert.deepEqual(
    { lost: result.lost, duplicates: result.duplicates, misplaced: result.misplaced },
    { lost: 0, duplicates: 0, misplaced: 0 },
  );
  assert.deepEqual(result.refused, {});
  assert.equal(code, 0);
});

Deno.test("clients cut beyond the window are told so, and never get part of what they missed", async () => {
  const { code, result } = await soak([
    ...["--clients", "100", "--rate", "100", "--duration", "8", "--rooms", "5"],
    ...["--cut-min", "2.5", "--cut-max", "3.5", "--history-ttl", "1", "--expect-refusals"],
  ]);
  assert.ok((result.refused.window ?? 0) > 0, JSON.stringify(result));
  assert.equal(result.replays.room, 0);
  assert.deepEqual(
    { gaps: result.gaps, duplicates: result.duplicates, lostTail: result.lostTail },
    { gaps: 0, duplicates: 0, lostTail: 0 },
  );
  assert.equal(code, 0);
});

Deno.test({
  name:
    "three nodes on Redis: clients resume on another node, through a node killed and Redis restarted",
  ignore: !redisAvailable,
  async fn() {
    const { code, result } = await soak([
      ...["--nodes", "3", "--clients", "90", "--rate", "60", "--duration", "12", "--rooms", "3"],
      ...["--cut-min", "0.5", "--cut-max", "3", "--kill-node", "--restart-redis"],
    ]);
    assert.equal(result.events.length, 3, result.events.join("; "));
    assert.deepEqual(
      { lost: result.lost, duplicates: result.duplicates, refused: result.refused },
      { lost: 0, duplicates: 0, refused: {} },
      JSON.stringify(result),
    );
    assert.equal(code, 0);
  },
});
