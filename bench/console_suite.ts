/**
 * Console suite: the web console's overview and tasks pages on the serve table.
 *
 * Server time: the app in process (`app.request`, no socket), so the time is the handler's:
 * parsing, the shared computations (or their cached answers) and rendering. Each page is
 * requested once cold (nothing cached: the real database work) and then sequentially for a few
 * seconds with the default 1 s cache — a warm console, where a computation runs once per TTL
 * and every other request renders from its answer; p50 and p95 of those.
 *
 * Viewers: 50 concurrent viewers, each loading the overview and a tasks page back to back (no
 * pause: far more than live refresh's one load per 5 s) for 30 s (10 s in the quick run). Every
 * shared computation that runs is counted by key (AppDeps.onComputation); the target is at most
 * 2 per key per TTL, i.e. the cost of one viewer, whatever their number.
 */
import { createApp } from "../server/app.ts";
import { int, mdTable, ms, percentile, rowsLabel, say, sleep } from "./common.ts";
import type { BenchContext } from "./context.ts";
import { openDb } from "./data.ts";
import type { SuiteReport, Target } from "./results_md.ts";

const PAGES: [string, string][] = [
  ["overview", "/ui"],
  ["tasks", "/ui/tasks"],
  ["tasks, failed", "/ui/tasks?status=failed"],
];
const TTL_MS = 1000;
const VIEWERS = 50;
const P50_LIMIT_MS = 100;
const PER_TTL_LIMIT = 2;

export async function consoleSuite(ctx: BenchContext): Promise<SuiteReport> {
  const filled = await ctx.filled(ctx.profile.serveRows);
  const viewSeconds = ctx.mode === "full" ? 30 : 10;
  const warmSeconds = Math.min(5, ctx.profile.serveSeconds);
  say(`console on ${filled.table} (${rowsLabel(filled.rows)} rows)`);
  const db = openDb(ctx.dsn, filled.table, 10);
  const computations = new Map<string, number>();
  const app = createApp({
    db,
    cacheTtlMs: TTL_MS,
    onComputation: (key) => computations.set(key, (computations.get(key) ?? 0) + 1),
  });
  const request = async (path: string): Promise<number> => {
    const started = performance.now();
    const res = await app.request(path);
    await res.arrayBuffer();
    if (res.status !== 200) throw new Error(`${path}: HTTP ${res.status}`);
    return performance.now() - started;
  };
  try {
    // Server time: cold once, then warm (sequential, the 1 s cache as served).
    const rows: (string | number)[][] = [];
    const warm: Record<string, { p50: number; p95: number }> = {};
    for (const [name, path] of PAGES) {
      const cold = await request(path);
      const samples: number[] = [];
      const until = performance.now() + warmSeconds * 1000;
      while (performance.now() < until) samples.push(await request(path));
      samples.sort((a, b) => a - b);
      const p50 = percentile(samples, 50);
      const p95 = percentile(samples, 95);
      warm[name] = { p50, p95 };
      rows.push([name, `\`${path}\``, ms(cold), ms(p50), ms(p95), int(samples.length)]);
      say(`  ${name}: cold ${ms(cold)}, warm p50 ${ms(p50)}, p95 ${ms(p95)}`);
    }

    // 50 viewers at once; computations counted per key.
    await sleep(TTL_MS + 100); // start with nothing cached
    computations.clear();
    let loads = 0;
    let failures = 0;
    const started = performance.now();
    const stopAt = started + viewSeconds * 1000;
    await Promise.all(Array.from({ length: VIEWERS }, async (_, i) => {
      while (performance.now() < stopAt) {
        for (const path of ["/ui", i % 2 === 0 ? "/ui/tasks" : "/ui/tasks?status=failed"]) {
          try {
            await request(path);
            loads++;
          } catch {
            failures++;
          }
        }
      }
    }));
    const elapsed = (performance.now() - started) / 1000;
    const ttls = elapsed / (TTL_MS / 1000);
    const perKey = [...computations].map(([key, n]) => [key, n, n / ttls] as const)
      .sort((a, b) => b[2] - a[2]);
    const worst = perKey[0]?.[2] ?? 0;
    say(
      `  ${VIEWERS} viewers, ${elapsed.toFixed(0)} s: ${int(loads)} pages, ${failures} failed; ` +
        `worst ${worst.toFixed(2)} computations per key per TTL`,
    );

    const p50s = Object.values(warm).map((w) => w.p50);
    const worstP50 = Math.max(...p50s);
    const tenM = filled.rows >= 10_000_000;
    const targets: Target[] = [
      {
        name: `overview and tasks pages: server time p50 < ${P50_LIMIT_MS} ms warm at 10M rows ` +
          `(app.request in process, default 1 s cache, sequential requests for ${warmSeconds} s; ` +
          `the worst page's p50)`,
        met: tenM ? worstP50 < P50_LIMIT_MS && failures === 0 : null,
        detail: `worst p50 ${ms(worstP50)} at ${rowsLabel(filled.rows)} rows${
          tenM ? "" : " (10M rows only in the full run)"
        }`,
      },
      {
        name: `${VIEWERS} concurrent viewers: at most ${PER_TTL_LIMIT} database computations ` +
          `per TTL (shared computations counted by key through AppDeps.onComputation, the ` +
          `worst key per ${TTL_MS} ms TTL; in-process viewers loading the overview and a tasks ` +
          `page back to back)`,
        met: failures === 0 && worst <= PER_TTL_LIMIT,
        detail: `worst ${worst.toFixed(2)} per key per ${TTL_MS} ms TTL over ${
          elapsed.toFixed(0)
        } s (${int(loads)} pages, ${failures} failed)`,
      },
    ];
    const body = [
      `Table: ${rowsLabel(filled.rows)} rows. In process (\`app.request\`): server time only.`,
      "",
      mdTable(["page", "path", "cold", "warm p50", "warm p95", "warm requests"], rows),
      "",
      `${VIEWERS} viewers loading pages back to back for ${elapsed.toFixed(0)} s ` +
      `(${int(loads)} pages, ${int(loads / elapsed)} pages/s): computations by key`,
      "",
      mdTable(
        ["computation", "runs", "per TTL"],
        perKey.map(([key, n, per]) => [`\`${key.slice(0, 80)}\``, int(n), per.toFixed(2)]),
      ),
    ].join("\n");
    return { suite: "console", title: "Web console", body, targets };
  } finally {
    await db.close();
  }
}
