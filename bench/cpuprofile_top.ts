// Summarizes a V8 .cpuprofile (as `deno run --cpu-prof` writes): the top
// functions by self time, and self time by source file.
//
//   deno run --allow-read bench/cpuprofile_top.ts bench/out/prof/comet-fanout-tcp.cpuprofile [N]

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
  columnNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

const file = Deno.args[0];
if (!file) {
  console.error("usage: cpuprofile_top.ts FILE.cpuprofile [N]");
  Deno.exit(2);
}
const top = Number(Deno.args[1] ?? 30);
const profile = JSON.parse(Deno.readTextFileSync(file)) as Profile;
const byId = new Map(profile.nodes.map((n) => [n.id, n]));

// Self time per node: each sample's time delta is charged to the node it hit.
const self = new Map<number, number>();
for (let i = 0; i < profile.samples.length; i++) {
  const id = profile.samples[i]!;
  const dt = profile.timeDeltas[i + 1] ?? 0;
  self.set(id, (self.get(id) ?? 0) + dt);
}

const short = (url: string) => {
  if (!url) return "";
  const m = /\/work\/main\/(.*)$/.exec(url);
  return m ? m[1]! : url.replace(/^ext:/, "ext:").replace(/^.*\/([^/]+)$/, "$1");
};

const fn = new Map<string, number>();
const files = new Map<string, number>();
let total = 0;
let idle = 0;
for (const [id, us] of self) {
  const n = byId.get(id)!;
  const { functionName, url, lineNumber } = n.callFrame;
  total += us;
  if (functionName === "(idle)") idle += us;
  const key = `${functionName || "(anonymous)"}  ${short(url)}${url ? `:${lineNumber + 1}` : ""}`;
  fn.set(key, (fn.get(key) ?? 0) + us);
  const f = url ? short(url) : functionName;
  files.set(f, (files.get(f) ?? 0) + us);
}

const busy = total - idle;
const pct = (us: number, of: number) => `${((us / of) * 100).toFixed(1).padStart(5)}%`;
const ms = (us: number) => `${(us / 1000).toFixed(0).padStart(7)} ms`;
console.log(
  `${file}\nsampled ${ms(total).trim()}, idle ${ms(idle).trim()} (${
    pct(idle, total).trim()
  }); percentages below are of the busy time (${ms(busy).trim()})\n`,
);
console.log(`Top ${top} functions by self time:`);
for (
  const [k, us] of [...fn].filter(([k]) => !k.startsWith("(idle)")).sort((a, b) => b[1] - a[1])
    .slice(0, top)
) {
  console.log(`  ${pct(us, busy)} ${ms(us)}  ${k}`);
}
console.log(`\nSelf time by file:`);
for (
  const [k, us] of [...files].filter(([k]) => k !== "(idle)").sort((a, b) => b[1] - a[1])
    .slice(0, 20)
) {
  console.log(`  ${pct(us, busy)} ${ms(us)}  ${k}`);
}
