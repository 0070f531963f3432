// One order per stream across a cluster (issue 20): Redis, three nodes, one
// room whose members are spread over the nodes, two publishers pushing into
// the room through two different nodes at once. Every member must take the
// same sequence: offsets 1..N with no gap or duplicate, and the same bytes at
// each offset (compared by digest). Each publisher's pushes must keep the order
// it sent them in.
//
//   deno run -A --unstable-net bench/stream_order.ts [--members 1000] [--pushes 10000]
//
// One line of JSON on stdout; exit status 1 when any member's sequence differs.
import { parseArgs } from "node:util";
import { startRedis } from "./_redis.ts";
import { StreamClient } from "./recovery_client.ts";
import { planNodes, push, sleep, startNode, stopNodes } from "./stream_nodes.ts";

const { values: a } = parseArgs({
  args: Deno.args,
  options: {
    members: { type: "string", default: "1000" },
    pushes: { type: "string", default: "10000" },
    nodes: { type: "string", default: "3" },
  },
});
const members = Number(a.members);
const pushes = Number(a.pushes);
const redis = await startRedis();
const nodes = planNodes(Number(a.nodes), [], redis.url);
const started = performance.now();
try {
  await Promise.all(nodes.map(startNode));
  const room = "live://order";
  const clients: StreamClient[] = [];
  for (let i = 0; i < members; i++) {
    // One member keeps what it took: the publishers' own order is checked on its sequence,
    // which the digests show every other member shares.
    clients.push(
      new StreamClient({ mid: i + 1, key: `o${i}`, room, checkBodies: false, keepBodies: i === 0 }),
    );
  }
  for (let i = 0; i < members; i += 50) {
    await Promise.all(
      clients.slice(i, i + 50).map((c, j) => c.connect(nodes[(i + j) % nodes.length]!.tcp)),
    );
  }
  // Every node must know the room's members elsewhere before the pushes start.
  await sleep(1500);
  let refused = 0;
  const publisher = async (name: string, node: number, count: number) => {
    for (let k = 1; k <= count; k++) {
      const outcome = await push(
        nodes[node]!,
        "/goim/push/room?operation=1000&type=live&room=order",
        `${name}#${k}`,
      );
      if (outcome !== "ok") refused++;
    }
  };
  await Promise.all([
    publisher("A", 0, Math.ceil(pushes / 2)),
    publisher("B", 1 % nodes.length, Math.floor(pushes / 2)),
  ]);
  const accepted = pushes - refused;
  const deadline = performance.now() + 120_000;
  while (
    clients.some((c) => c.tally.received < accepted) && performance.now() < deadline
  ) await sleep(200);
  await sleep(500);
  const digests = new Map<string, number>();
  let gaps = 0;
  let duplicates = 0;
  let short = 0;
  for (const c of clients) {
    const t = c.tally;
    gaps += t.gaps;
    duplicates += t.duplicates;
    if (t.received !== accepted || c.positions.get("room")?.offset !== accepted) short++;
    const d = `${t.received}:${c.digest}`;
    digests.set(d, (digests.get(d) ?? 0) + 1);
  }
  // Each publisher's pushes in the order it sent them (A#1 before A#2, ...; a refused one
  // leaves a hole, never a step back).
  let reordered = 0;
  const last = new Map<string, number>();
  for (const body of clients[0]!.bodies) {
    const [name, k] = body.split("#");
    if (Number(k) <= (last.get(name!) ?? 0)) reordered++;
    last.set(name!, Number(k));
  }
  await Promise.all(clients.map((c) => c.cut()));
  const result = {
    members,
    nodes: nodes.length,
    pushes,
    refused,
    sequences: digests.size,
    short,
    gaps,
    duplicates,
    reordered,
    seconds: Math.round((performance.now() - started) / 1000),
  };
  console.log(JSON.stringify(result));
  const same = digests.size === 1 && short === 0 && gaps === 0 && duplicates === 0;
  Deno.exitCode = same && reordered === 0 ? 0 : 1;
} finally {
  await stopNodes(nodes);
  await redis.stop();
}
