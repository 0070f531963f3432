// The admin page: its token handshake (query once, then an HttpOnly cookie scoped to
// /admin), its JSON figures and push endpoint over HTTP, and the page itself in headless
// Chromium: live charts, and a push from its form reaching a connected client. The browser
// test saves a screenshot to $COMET_SCREENSHOT_DIR, or to a temporary directory it prints.
import assert from "node:assert/strict";
import type { CometServer } from "../src/serve.ts";
import { Chromium, findChromium } from "./_chromium.ts";
import { startServer, TestClient, text, until } from "./_helpers.ts";

const TOKEN = "adm1n-t0ken";

function url(server: CometServer, path: string): string {
  return `http://127.0.0.1:${server.addrs.api!.port}${path}`;
}

/** Fetches without following redirects and always consumes the body. */
async function get(server: CometServer, path: string, init: RequestInit = {}) {
  const res = await fetch(url(server, path), { redirect: "manual", ...init });
  return { status: res.status, headers: res.headers, body: await res.text() };
}

/** Logs in with the token in the query; returns the cookie header to send back. */
async function login(server: CometServer): Promise<string> {
  const res = await get(server, `/admin?token=${TOKEN}`);
  assert.equal(res.status, 303);
  const cookie = res.headers.get("set-cookie")!;
  return cookie.slice(0, cookie.indexOf(";"));
}

Deno.test("admin: without the token every admin path answers 401", async () => {
  await using server = startServer({ apiToken: TOKEN });
  for (const path of ["/admin", "/admin/stats", "/admin/app.js", "/admin?token=wrong"]) {
    const res = await get(server, path);
    assert.equal(res.status, 401, path);
    assert.equal(JSON.parse(res.body).code, -401, path);
    assert.equal(res.headers.get("set-cookie"), null, path);
  }
  const push = await get(server, "/admin/push/all?operation=1000", { method: "POST", body: "x" });
  assert.equal(push.status, 401);
  assert.equal(server.comet.stats.pushes.all, 0);
});

Deno.test("admin: ?token= sets an HttpOnly SameSite=Strict cookie for /admin and drops the query", async () => {
  await using server = startServer({ apiToken: TOKEN });
  const res = await get(server, `/admin?token=${TOKEN}`);
  assert.equal(res.status, 303);
  assert.equal(res.headers.get("location"), "/admin");
  const cookie = res.headers.get("set-cookie")!;
  const [pair, ...attributes] = cookie.split(";").map((s) => s.trim());
  assert.deepEqual(attributes.sort(), ["HttpOnly", "Path=/admin", "SameSite=Strict"]);
  const value = pair!.slice(pair!.indexOf("=") + 1);
  assert.match(value, /^[0-9a-f]{64}$/);
  assert.ok(!value.includes(TOKEN), "the cookie is not the token itself");

  const page = await get(server, "/admin", { headers: { cookie: pair! } });
  assert.equal(page.status, 200);
  assert.match(page.headers.get("content-type")!, /^text\/html/);
  assert.match(page.headers.get("content-security-policy")!, /script-src 'self'/);
  assert.equal(page.headers.get("referrer-policy"), "no-referrer");
  assert.match(page.body, /<script src="\/admin\/app\.js"><\/script>/);
  assert.ok(!page.body.includes("<script>"), "no inline script");
  // Behind a TLS proxy the cookie is Secure as well.
  const proxied = await get(server, `/admin?token=${TOKEN}`, {
    headers: { "x-forwarded-proto": "https" },
  });
  assert.match(proxied.headers.get("set-cookie")!, /; Secure$/);
  // A bearer header works too, for scripts.
  const bearer = await get(server, "/admin", { headers: { authorization: `Bearer ${TOKEN}` } });
  assert.equal(bearer.status, 200);
  // The cookie opens /admin only: not the push API, not /metrics.
  for (const path of ["/metrics", "/goim/online/total"]) {
    assert.equal((await get(server, path, { headers: { cookie: pair! } })).status, 401, path);
  }
  // A second server with the same token accepts the same cookie (it is derived, not random).
  await using other = startServer({ apiToken: TOKEN });
  assert.equal((await get(other, "/admin/stats", { headers: { cookie: pair! } })).status, 200);
  await using different = startServer({ apiToken: "another" });
  assert.equal((await get(different, "/admin", { headers: { cookie: pair! } })).status, 401);
});

Deno.test("admin: stats, assets, push, and the answers to wrong paths and methods", async () => {
  await using server = startServer({ apiToken: TOKEN });
  const cookie = await login(server);
  const headers = { cookie };
  await using client = await TestClient.auth(server.addrs.tcp!.port, {
    mid: 7,
    key: "k7",
    room_id: "live://1000",
    accepts: [1000],
  });

  const stats = await get(server, "/admin/stats", { headers });
  assert.equal(stats.status, 200);
  const data = JSON.parse(stats.body).data;
  assert.equal(data.connectionsTotal, 1);
  assert.equal(data.connections.tcp, 1);
  assert.equal(data.rooms, 1);
  assert.deepEqual(data.topRooms, [{ room: "live://1000", count: 1 }]);
  assert.equal(data.cluster, "ready");
  assert.equal(typeof data.stats.pushes.room, "number");

  const js = await get(server, "/admin/app.js", { headers });
  assert.match(js.headers.get("content-type")!, /^text\/javascript/);
  assert.ok(!js.body.includes("innerHTML"), "the page never writes HTML from data");
  const css = await get(server, "/admin/app.css", { headers });
  assert.match(css.headers.get("content-type")!, /^text\/css/);

  for (
    const [kind, query] of [
      ["room", "type=live&room=1000"],
      ["keys", "keys=k7"],
      ["mids", "mids=7"],
      ["all", "speed=0"],
    ]
  ) {
    const res = await get(server, `/admin/push/${kind}?operation=1000&${query}`, {
      method: "POST",
      headers,
      body: `via ${kind}`,
    });
    assert.equal(res.status, 200, res.body);
    assert.equal(text((await client.nextOp(1000)).body), `via ${kind}`);
  }
  // Parameters are checked as on the push API.
  const bad = await get(server, "/admin/push/room?operation=x", { method: "POST", headers });
  assert.equal(bad.status, 400);
  const reserved = await get(server, "/admin/push/all?operation=6", { method: "POST", headers });
  assert.equal(reserved.status, 400);
  assert.equal(
    JSON.parse(reserved.body).message,
    "Invalid parameter operation: 6 is reserved by the protocol (0 to 18)",
  );

  // A cross-site page cannot push through the cookie.
  const foreign = await get(server, "/admin/push/all?operation=1000", {
    method: "POST",
    headers: { cookie, origin: "http://evil.example" },
    body: "no",
  });
  assert.equal(foreign.status, 403);
  assert.deepEqual(JSON.parse(foreign.body), {
    code: -403,
    message: "Forbidden: cross-origin request: http://evil.example",
    data: null,
  });
  const same = await get(server, "/admin/push/all?operation=1000", {
    method: "POST",
    headers: { cookie, origin: url(server, "") },
    body: "yes",
  });
  assert.equal(same.status, 200);
  assert.equal(text((await client.nextOp(1000)).body), "yes");

  assert.equal((await get(server, "/admin/push/room", { headers })).status, 405);
  assert.equal((await get(server, "/admin/push/nope", { method: "POST", headers })).status, 404);
  assert.equal((await get(server, "/admin/nope", { headers })).status, 404);
  assert.equal((await get(server, "/admin/stats", { method: "POST", headers })).status, 405);
  const slash = await get(server, "/admin/", { headers });
  assert.equal(slash.status, 308);
  assert.equal(slash.headers.get("location"), "/admin");
});

Deno.test("admin: without an API token the page is open, and admin: false turns it off", async () => {
  await using open = startServer();
  assert.equal((await get(open, "/admin")).status, 200);
  const redirect = await get(open, "/admin?token=anything");
  assert.equal(redirect.status, 303);
  assert.equal(redirect.headers.get("set-cookie"), null);

  const { createApiHandler } = await import("../src/api/push_api.ts");
  const handle = createApiHandler(open.comet, { admin: false });
  const res = await handle(new Request("http://localhost/admin"));
  await res.body?.cancel();
  assert.equal(res.status, 404);
});

Deno.test("admin: without an API token a cross-origin push is still refused with 403", async () => {
  await using open = startServer();
  // No cookie to withhold: a page of another origin is refused for what it is.
  for (
    const headers of [
      { origin: "http://evil.example", "sec-fetch-site": "cross-site" },
      { origin: "http://evil.example" },
      { "sec-fetch-site": "same-site" },
      { origin: "null" },
    ]
  ) {
    const res = await get(open, "/admin/push/all?operation=1000", {
      method: "POST",
      headers,
      body: "no",
    });
    assert.equal(res.status, 403, JSON.stringify(headers));
    assert.match(JSON.parse(res.body).message, /^Forbidden: cross-origin request: /);
  }
  assert.equal(open.comet.stats.pushes.all, 0);
  for (const headers of [{}, { "sec-fetch-site": "same-origin" }, { origin: url(open, "") }]) {
    const res = await get(open, "/admin/push/all?operation=1000", {
      method: "POST",
      headers,
      body: "yes",
    });
    assert.equal(res.status, 200, JSON.stringify(headers));
  }
  assert.equal(open.comet.stats.pushes.all, 3);
});

Deno.test({
  name: "admin page in chromium: live charts, and its push form reaches a client",
  ignore: findChromium() === undefined,
  async fn() {
    await using server = startServer({ apiToken: TOKEN });
    const port = server.addrs.tcp!.port;
    await using a = await TestClient.auth(port, {
      mid: 1,
      key: "alice",
      room_id: "live://1000",
      accepts: [1000],
    });
    await using b = await TestClient.auth(port, { mid: 2, key: "bob", room_id: "live://2000" });
    const dir = Deno.env.get("COMET_SCREENSHOT_DIR") ??
      await Deno.makeTempDir({ prefix: "comet_admin_" });
    await Deno.mkdir(dir, { recursive: true });
    const shot = `${dir}/admin.png`;
    {
      await using browser = await Chromium.launch();
      const tab = await browser.newPage(url(server, `/admin?token=${TOKEN}`));
      await tab.send("Emulation.setDeviceMetricsOverride", {
        width: 1280,
        height: 900,
        deviceScaleFactor: 1,
        mobile: false,
      });
      // The redirect dropped the token from the address; the cookie carries it from now on.
      assert.equal(await tab.evaluate<string>("location.href"), url(server, "/admin"));
      assert.equal(await tab.evaluate<string>("document.cookie"), "", "the cookie is HttpOnly");
      await tab.waitFor("window.cometAdmin && window.cometAdmin.ticks >= 1");
      assert.equal(
        await tab.evaluate<string>("document.getElementById('connections').textContent"),
        "2",
      );
      assert.equal(await tab.evaluate<string>("document.getElementById('rooms').textContent"), "2");
      assert.ok(
        await tab.evaluate<number>("document.styleSheets[0].cssRules.length") > 10,
        "the stylesheet loaded under the CSP",
      );

      // A push through the API shows up in the counters and in the rate chart.
      const res = await fetch(url(server, "/goim/push/room?operation=1000&type=live&room=1000"), {
        method: "POST",
        headers: { authorization: `Bearer ${TOKEN}` },
        body: "from the api",
      });
      await res.body?.cancel();
      assert.equal(text((await a.nextOp(1000)).body), "from the api");
      await tab.waitFor("document.getElementById('pushes').textContent === '1'", 5_000);
      await tab.waitFor("window.cometAdmin.ticks >= 3", 5_000);
      const points = await tab.evaluate<string[]>(
        "[...document.querySelectorAll('svg polyline')].map((p) => p.getAttribute('points'))",
      );
      assert.equal(points.length, 4);
      for (const p of points) assert.ok(p.split(" ").length >= 2, `a line of points: ${p}`);
      const rooms = await tab.evaluate<string[]>(
        "[...document.querySelectorAll('#top-rooms td')].map((td) => td.textContent)",
      );
      assert.deepEqual(rooms.sort(), ["1", "1", "live://1000", "live://2000"]);

      // The form: a room push, then a key push; the clients get exactly what was typed.
      const submit = async (kind: string, target: string, body: string) => {
        await tab.evaluate(`(() => {
          const form = document.getElementById("push-form");
          form.elements.kind.value = ${JSON.stringify(kind)};
          form.elements.operation.value = "1000";
          form.elements.target.value = ${JSON.stringify(target)};
          form.elements.body.value = ${JSON.stringify(body)};
          document.querySelector("#push-form button").click();
        })()`);
      };
      await submit("room", "live://1000", "<b>hello</b> from the form");
      assert.equal(text((await a.nextOp(1000)).body), "<b>hello</b> from the form");
      await tab.waitFor("document.getElementById('push-result').textContent.startsWith('200')");
      await submit("keys", "alice,bob", "by key");
      assert.equal(text((await a.nextOp(1000)).body), "by key");
      assert.ok(await b.silent(100), "bob watches no op, so a key push skips him");
      await tab.waitFor("document.getElementById('pushes').textContent === '3'", 5_000);
      await tab.waitFor("window.cometAdmin.pushed === 2");

      await tab.screenshot(shot);
      assert.deepEqual(tab.errors, []);
    }
    const png = await Deno.readFile(shot);
    assert.deepEqual([...png.subarray(0, 4)], [0x89, 0x50, 0x4e, 0x47]);
    console.log(`admin page screenshot: ${shot}`);
    assert.ok(await until(() => server.comet.connections === 2));
  },
});
