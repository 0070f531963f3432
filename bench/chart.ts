// bench/out/fanout.svg: deliveries per second against room size, drawn by hand.
import type { Results } from "./records.ts";
import { fmtNum } from "./table.ts";

/** A hand-written SVG line chart: deliveries/s against room size (log x). */
export function chart(results: Results): string {
  const series: { name: string; color: string; pts: [number, number][] }[] = [];
  const pick = (runs: readonly { size: number; deliveriesPerSec: number }[] | undefined) =>
    (runs ?? []).map((r) => [r.size, r.deliveriesPerSec] as [number, number]);
  if (results.baseline.fanout) {
    series.push({
      name: "plain Deno TCP, 1 frame per write",
      color: "#666",
      pts: pick(results.baseline.fanout),
    });
  }
  const matched = results.baseline.fanout_matched?.filter((r) => r.matches === "tcp");
  if (matched?.length) {
    series.push({
      name: "plain Deno TCP, Comet TCP's frames per write",
      color: "#bbb",
      pts: pick(matched),
    });
  }
  if (results.comet.fanout_tcp) {
    series.push({ name: "Comet TCP", color: "#1f77b4", pts: pick(results.comet.fanout_tcp) });
  }
  if (results.comet.fanout_ws) {
    series.push({ name: "Comet WebSocket", color: "#d62728", pts: pick(results.comet.fanout_ws) });
  }
  const W = 720, H = 420, L = 90, R = 30, T = 40, B = 60;
  const all = series.flatMap((s) => s.pts);
  const xs = all.map((p) => p[0]);
  const xmin = Math.log10(Math.min(...xs, 100)), xmax = Math.log10(Math.max(...xs, 10_000));
  const ymaxRaw = Math.max(...all.map((p) => p[1]), 1);
  const step = 10 ** Math.floor(Math.log10(ymaxRaw));
  const ymax = Math.ceil(ymaxRaw / step) * step;
  const X = (x: number) => L + ((Math.log10(x) - xmin) / (xmax - xmin || 1)) * (W - L - R);
  const Y = (y: number) => H - B - (y / ymax) * (H - T - B);
  const el: string[] = [];
  el.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  el.push(
    `<text x="${W / 2}" y="22" text-anchor="middle" font-size="15">` +
      `Room fan-out: deliveries per second against room size (64-byte bodies, 2 cores)</text>`,
  );
  for (let i = 0; i <= 5; i++) {
    const y = (ymax * i) / 5;
    el.push(`<line x1="${L}" x2="${W - R}" y1="${Y(y)}" y2="${Y(y)}" stroke="#eee"/>`);
    el.push(
      `<text x="${L - 8}" y="${Y(y) + 4}" text-anchor="end" font-size="11">${fmtNum(y)}</text>`,
    );
  }
  for (const x of [...new Set([100, 1_000, 5_000, 10_000, ...xs])].sort((a, b) => a - b)) {
    el.push(`<line x1="${X(x)}" x2="${X(x)}" y1="${T}" y2="${H - B}" stroke="#eee"/>`);
    el.push(
      `<text x="${X(x)}" y="${H - B + 16}" text-anchor="middle" font-size="11">${fmtNum(x)}</text>`,
    );
  }
  el.push(`<line x1="${L}" x2="${W - R}" y1="${H - B}" y2="${H - B}" stroke="black"/>`);
  el.push(`<line x1="${L}" x2="${L}" y1="${T}" y2="${H - B}" stroke="black"/>`);
  el.push(
    `<text x="${(L + W - R) / 2}" y="${H - 18}" text-anchor="middle" font-size="12">` +
      `room members (log scale)</text>`,
  );
  el.push(
    `<text x="18" y="${(T + H - B) / 2}" text-anchor="middle" font-size="12" ` +
      `transform="rotate(-90 18 ${(T + H - B) / 2})">deliveries / s</text>`,
  );
  series.forEach((s, i) => {
    const pts = s.pts.map(([x, y]) => `${X(x).toFixed(1)},${Y(y).toFixed(1)}`).join(" ");
    el.push(`<polyline points="${pts}" fill="none" stroke="${s.color}" stroke-width="2"/>`);
    for (const [x, y] of s.pts) {
      el.push(
        `<circle cx="${X(x).toFixed(1)}" cy="${Y(y).toFixed(1)}" r="3.5" fill="${s.color}"/>`,
      );
    }
    el.push(
      `<rect x="${L + 12}" y="${T + 8 + i * 18}" width="14" height="3" fill="${s.color}"/>` +
        `<text x="${L + 32}" y="${T + 13 + i * 18}" font-size="12">${s.name}</text>`,
    );
  });
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" ` +
    `viewBox="0 0 ${W} ${H}" font-family="sans-serif">\n${el.join("\n")}\n</svg>\n`;
}
