// The admin page's last two minutes on the server: the ring, the merge of workers'
// rings, GET /admin/history, and the page drawing them at load.
import assert from "node:assert/strict";
import { AdminHistory, type AdminSample, mergeHistories } from "../src/api/admin_history.ts";
import { Comet } from "../src/server/comet.ts";
import { silentLogger } from "../src/log.ts";
import { Chromium, findChromium } from "./_chromium.ts";
import { api as request, startServer, TestClient, until } from "./_helpers.ts";

/** Polls `check` (which may await) every 20 ms until it is true; fails after `timeout`. */
async function eventually(check: () => Promise<boolean>, what: string, timeout = 10_000) {
  const deadline = Date.now() + timeout;
  while (!(await check())) {
    if (Date.now() > deadline) assert.fail(`Timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

Deno.test("admin history keeps the newest samples of its ring, oldest first, until aborted", async () => {
  const comet = new Comet({ logger: silentLogger });
  const stop = new AbortController();
  try {
    const history = new AdminHistory(comet, { signal: stop.signal, size: 3, interval: 5 });
    assert.deepEqual(history.samples(), [], "nothing is sampled before start");
    history.start();
    history.start(); // one timer, however often it is asked
    assert.equal(history.samples().length, 1, "the first sample is taken at once");
    const first = history.samples()[0]!;
    assert.ok(await until(() => history.samples()[0] !== first, 5_000), "the ring turned");
    const samples = history.samples();
    assert.equal(samples.length, 3);
    for (let i = 1; i < samples.length; i++) assert.ok(samples[i]!.time >= samples[i - 1]!.time);
    assert.deepEqual(Object.keys(samples[0]!).sort(), [
      "connections",
      "deliveries",
      "pushes",
      "rooms",
      "time",
    ]);
  } finally {
    stop.abort();
    await comet.close(0);
  }
});

Deno.test("admin history without a signal, or with an aborted one, runs no timer", async () => {
  const comet = new Comet({ logger: silentLogger });
  try {
    const alone = new AdminHistory(comet);
    alone.start();
    assert.deepEqual(alone.samples(), []);
    const stopped = new AdminHistory(comet, { signal: AbortSignal.abort() });
    stopped.start();
    assert.deepEqual(stopped.samples(), []);
    assert.throws(() => new AdminHistory(comet, { size: 0 }), RangeError);
    assert.throws(() => new AdminHistory(comet, { interval: 0.5 }), RangeError);
  } finally {
    await comet.close(0);
  }
});

Deno.test("workers' histories are summed from the newest, timed by the first", () => {
  const at = (time: number, n: number): AdminSample => ({
    time,
    connections: n,
    rooms: n,
    pushes: 10 * n,
    deliveries: 100 * n,
  });
  const merged = mergeHistories([[at(1000, 1), at(2000, 2), at(3000, 3)], [at(2990, 5)], [
    at(1990, 7),
    at(2995, 9),
  ]]);
  assert.deepEqual(merged, [
    at(1000, 1),
    { ...at(2000, 2 + 7), time: 2000 },
    { ...at(3000, 3 + 5 + 9), time: 3000 },
  ]);
  assert.deepEqual(mergeHistories([]), []);
});

Deno.test("a fresh GET /admin/history returns the samples taken before it", async () => {
  await using server = startServer();
  const history = async () => {
    const res = await request(server, "/admin/history");
    assert.equal(res.status, 200);
    return res.body.data as { interval: number; samples: AdminSample[] };
  };
  const before = await history();
  assert.equal(before.interval, 1000);
  assert.ok(before.samples.length >= 1, "the page's first request starts the sampler");
  await using _client = await TestClient.auth(server.addrs.tcp!.port, {
    mid: 1,
    room_id: "live://1",
  });
  let after: AdminSample[] = [];
  await eventually(async () => {
    after = (await history()).samples;
    return after.some((s) => s.connections === 1 && s.rooms === 1);
  }, "a sample counts the client");
  // Every sample the first answer had is still there, first, in order.
  assert.deepEqual(after.slice(0, before.samples.length), before.samples);
  assert.equal(after[0]!.connections, 0);
});

Deno.test({
  name: "admin page in chromium draws the server's samples at load",
  ignore: findChromium() === undefined,
  async fn() {
    await using server = startServer();
    await using _client = await TestClient.auth(server.addrs.tcp!.port, { mid: 1 });
    const base = `http://127.0.0.1:${server.addrs.api!.port}`;
    await eventually(async () => {
      const res = await request(server, "/admin/history");
      return (res.body.data as { samples: unknown[] }).samples.length >= 3;
    }, "three samples are kept");
    await using browser = await Chromium.launch();
    const tab = await browser.newPage(`${base}/admin`);
    await tab.waitFor("window.cometAdmin && window.cometAdmin.ticks >= 1");
    assert.ok((await tab.evaluate<number>("window.cometAdmin.loaded")) >= 3);
    // A chart of samples has a point each: the history's and the first poll's.
    const points = await tab.evaluate<number>(
      `document.querySelector("#chart-connections polyline").getAttribute("points").split(" ").length`,
    );
    assert.ok(points >= 4, `points: ${points}`);
    assert.deepEqual(tab.errors, []);
  },
});
