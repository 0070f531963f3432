// One order per stream across nodes (bench/stream_order.ts) at a size CI can
// afford: two publishers into two nodes, one room spread over three. The
// full-size run (1,000 members, 10,000 pushes) is in the note.
import assert from "node:assert/strict";
import { redisAvailable } from "./_redis.ts";

Deno.test({
  name: "two publishers into two nodes: every member of the room takes the same sequence",
  ignore: !redisAvailable,
  async fn() {
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        ...["run", "-A", "--unstable-net"],
        new URL("../bench/stream_order.ts", import.meta.url).pathname,
        ...["--members", "60", "--pushes", "600"],
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stdout = new TextDecoder().decode(out.stdout).trim();
    const last = stdout.split("\n").at(-1) ?? "";
    assert.ok(last.startsWith("{"), `${stdout}\n${new TextDecoder().decode(out.stderr)}`);
    const result = JSON.parse(last);
    assert.deepEqual(
      {
        sequences: result.sequences,
        short: result.short,
        gaps: result.gaps,
        duplicates: result.duplicates,
        refused: result.refused,
        reordered: result.reordered,
      },
      { sequences: 1, short: 0, gaps: 0, duplicates: 0, refused: 0, reordered: 0 },
    );
    assert.equal(out.code, 0);
  },
});
