// One version for the whole release: deno.json's, which JSR publishes, is the one
// `comet --version`, /metrics and the cluster's node reports state.
import assert from "node:assert/strict";
import { VERSION, versionLine } from "../src/version.ts";

Deno.test("the version in src/version.ts is deno.json's", async () => {
  const config = JSON.parse(await Deno.readTextFile(new URL("../deno.json", import.meta.url)));
  assert.equal(typeof config.version, "string");
  assert.equal(VERSION, config.version);
  assert.match(VERSION, /^\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$/);
});

Deno.test("the version line names Comet's version, then Deno's", () => {
  const line = versionLine();
  assert.ok(line.startsWith(`comet ${VERSION} (deno ${Deno.version.deno}, v8 `), line);
  assert.ok(line.endsWith(`, ${Deno.build.target})`), line);
  assert.equal(line.split("\n").length, 1);
});
