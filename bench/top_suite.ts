/**
 * Top suite: the cost of "is it getting better?" on the filled table while tasks keep
 * finishing.
 *
 * A writer inserts finished tasks (type `bench_top_writer`, 99% completed, 1% failed) at
 * {@link WRITER_PER_SECOND} per second for the whole suite — the steady completions a
 * dispatcher would record — and deletes them at the end, so the shared table is left as found.
 * Measured in process, on a pool whose driver reports every statement:
 *
 * - `GET /throughput` (60 minutes, 48 hours) of a `createApp()` with the answer cache off
 *   (`cacheTtlMs: 0`): the first, cold request counts every bucket; warm, each request counts
 *   only the seconds not yet settled (5 s). p50/p95 and statements per request.
 * - One `top` frame as `seedtask top` refreshes from the database (the overview and one panel
 *   in turn): p50/p95 and the most statements any frame took.
 * - 50 concurrent viewers of `GET /overview` for a few seconds with the default 1 s cache:
 *   statements per second, against one computation (1 statement) per TTL.
 */
import type postgres from "postgres";
import { resolveConfig } from "../lib/config.ts";
import { connect, type Db } from "../lib/db.ts";
import { databaseSource, PANEL_TURNS } from "../commands/top.ts";
import { createApp } from "../server/app.ts";
import { int, mdTable, ms, repeat, rowsLabel, say, sleep, summarize } from "./common.ts";
import type { BenchContext } from "./context.ts";
import type { SuiteReport, Target } from "./results_md.ts";

const WRITER_PER_SECOND = 2000;
const WRITER_TYPE = "bench_top_writer";
const THROUGHPUT_P50_MS = 20;
const FRAME_P50_MS = 100;
const FRAME_STATEMENTS = 5;
const VIEWERS = 50;

/** Inserts finished tasks at `perSecond` until stopped; returns how many it wrote. */
function startWriter(sql: postgres.Sql, table: string, perSecond: number) {
  let stop = false;
  let written = 0;
  const tickMs = 100;
  const batch = Math.max(1, Math.round(perSecond * tickMs / 1000));
  const [schema, name] = table.split(".") as [string, string];
  const done = (async () => {
    while (!stop) {
      const t0 = performance.now();
      await sql`
        insert into ${sql(schema)}.${sql(name)}
          (type, status, created_at, locked_at, updated_at, locked_by, attempts)
        select ${WRITER_TYPE}, (case when i % 100 = 0 then 'failed' else 'completed' end)::text::${
        sql(schema)
      }.taskstatus,
          now() - interval '3 seconds', now() - interval '1 second', now(), 'bench-writer', 1
        from generate_series(1, ${batch}) i`;
      written += batch;
      await sleep(Math.max(0, tickMs - (performance.now() - t0)));
    }
  })();
  return {
    get written() {
      return written;
    },
    async stop() {
      stop = true;
      await done;
    },
  };
}

function countingDb(dsn: string, table: string): { db: Db; statements: () => number } {
  let n = 0;
  const db = connect(resolveConfig({ dsn, table, maxConnections: 4 }, {}), {
    onQuery: () => void n++,
  });
  return { db, statements: () => n };
}

export async function topSuite(ctx: BenchContext): Promise<SuiteReport> {
  const filled = await ctx.filled(ctx.profile.serveRows);
  const { table, schema } = filled;
  const budgetMs = ctx.profile.inProcessBudgetMs;
  const reps = ctx.profile.inProcessReps;
  say(
    `top on ${table} (${rowsLabel(filled.rows)} rows), a writer finishing ${
      int(WRITER_PER_SECOND)
    } tasks/s`,
  );
  const writer = startWriter(ctx.sql, table, WRITER_PER_SECOND);
  const { db, statements } = countingDb(ctx.dsn, table);
  const targets: Target[] = [];
  const rows: (string | number)[][] = [];
  try {
    await sleep(3000); // the open minute holds a few seconds of writes before measuring

    // GET /throughput: cold, then warm (the answer cache off: every request does its work).
    const app = createApp({ db, cacheTtlMs: 0 });
    const request = async (path: string) => {
      const res = await app.request(path);
      if (res.status !== 200) throw new Error(`${path}: ${res.status} ${await res.text()}`);
      await res.arrayBuffer();
    };
    let s0 = statements();
    let t0 = performance.now();
    await request("/throughput");
    const coldMs = performance.now() - t0;
    const coldStatements = statements() - s0;
    s0 = statements();
    const warm = summarize(
      await repeat(() => request("/throughput"), { reps, budgetMs, warmup: 2 }),
    );
    const perRequest = (statements() - s0) / (warm.n + 2);
    rows.push([
      "GET /throughput (60 min, 48 h), cold",
      ms(coldMs),
      "—",
      coldStatements,
    ]);
    rows.push([
      `GET /throughput warm (${warm.n} requests)`,
      ms(warm.p50),
      ms(warm.p95),
      perRequest.toFixed(2),
    ]);
    targets.push({
      name: `GET /throughput warm p50 < ${THROUGHPUT_P50_MS} ms and one small count per ` +
        `refresh (createApp().request in process, answer cache off, p50 over the requests; ` +
        `statements counted by the driver; ${rowsLabel(filled.rows)} rows, a writer finishing ${
          int(WRITER_PER_SECOND)
        } tasks/s)`,
      met: warm.p50 < THROUGHPUT_P50_MS && perRequest <= 1.01,
      detail: `p50 ${ms(warm.p50)}, ${perRequest.toFixed(2)} statements per request`,
    });

    // One top frame, as `seedtask top` refreshes from the database: the overview and one
    // panel in turn (failure groups, workers).
    const source = databaseSource(db, {});
    let turn = 0;
    const frame = () =>
      Promise.all([
        source.overview(null),
        source.panel(PANEL_TURNS[turn++ % PANEL_TURNS.length]!, null),
      ]);
    s0 = statements();
    t0 = performance.now();
    await frame();
    const firstFrameMs = performance.now() - t0;
    const firstFrameStatements = statements() - s0;
    const perFrameCounts: number[] = [];
    const frameMs: number[] = [];
    for (let i = 0; i < 2; i++) await frame(); // warm-up: both panels once more
    const deadlineFrames = performance.now() + budgetMs;
    while (frameMs.length < reps && (frameMs.length < 6 || performance.now() < deadlineFrames)) {
      const before = statements();
      const start = performance.now();
      await frame();
      frameMs.push(performance.now() - start);
      perFrameCounts.push(statements() - before);
    }
    const frames = summarize(frameMs);
    const perFrame = Math.max(...perFrameCounts);
    const overviewOnly = summarize(
      await repeat(() => source.overview(null), { reps, budgetMs: budgetMs / 2, warmup: 1 }),
    );
    rows.push(["top frame, first", ms(firstFrameMs), "—", firstFrameStatements]);
    rows.push([
      `top frame: overview + one panel (${frames.n} frames)`,
      ms(frames.p50),
      ms(frames.p95),
      `≤ ${perFrame}`,
    ]);
    rows.push([
      `GET /overview's work alone (${overviewOnly.n})`,
      ms(overviewOnly.p50),
      ms(overviewOnly.p95),
      1,
    ]);
    targets.push({
      name: `one top frame at most ${FRAME_STATEMENTS} statements and p50 < ${FRAME_P50_MS} ms ` +
        `(the overview and one panel in turn, in process, as \`seedtask top\` refreshes; ` +
        `statements counted by the driver; ${rowsLabel(filled.rows)} rows, the writer running)`,
      met: frames.p50 < FRAME_P50_MS && perFrame <= FRAME_STATEMENTS,
      detail: `p50 ${ms(frames.p50)}, at most ${perFrame} statements per frame (the first ` +
        `frame ${firstFrameStatements}: it also reads the catalog, the planner's figures and ` +
        `the driver's array types, once)`,
    });

    // 50 viewers refreshing /overview as fast as they can, with the default 1 s cache.
    const shared = createApp({ db, cacheTtlMs: 1000 });
    const seconds = Math.min(5, ctx.profile.serveSeconds);
    s0 = statements();
    const deadline = performance.now() + seconds * 1000;
    let served = 0;
    await Promise.all(Array.from({ length: VIEWERS }, async () => {
      while (performance.now() < deadline) {
        const res = await shared.request("/overview");
        if (res.status !== 200) throw new Error(`/overview: ${res.status}`);
        await res.arrayBuffer();
        served++;
      }
    }));
    const viewerStatements = statements() - s0;
    const perSecond = viewerStatements / seconds;
    rows.push([
      `${VIEWERS} viewers of GET /overview, ${seconds} s (${int(served)} answers)`,
      "—",
      "—",
      `${perSecond.toFixed(1)}/s`,
    ]);
    targets.push({
      name: `${VIEWERS} concurrent viewers of GET /overview cost about one computation per ` +
        `cache TTL (1 s): statements per second counted by the driver over ${seconds} s, at ` +
        `most 1.5 (one computation is 1 statement; in process, createApp with the default cache)`,
      met: perSecond <= 1.5,
      detail: `${perSecond.toFixed(1)} statements/s for ${int(served / seconds)} answers/s; ` +
        "one computation is 1 statement",
    });
  } finally {
    await writer.stop();
    await db.close();
    const [deleted] = await ctx.sql<{ n: number }[]>`
      with d as (delete from ${ctx.sql(schema)}.tasks where type = ${WRITER_TYPE} returning 1)
      select count(*)::int as n from d`;
    await ctx.sql.unsafe(`vacuum analyze "${schema}".tasks`);
    say(`writer: ${int(writer.written)} tasks written, ${int(deleted?.n ?? 0)} deleted again`);
  }
  const body = [
    `${rowsLabel(filled.rows)} rows, a writer finishing ${
      int(WRITER_PER_SECOND)
    } tasks/s throughout (99% completed, 1% failed; deleted afterwards). In process, warm pool.`,
    "",
    mdTable(["operation", "p50", "p95", "statements each"], rows),
    "",
    "Warm `/throughput` counts only the seconds not yet settled (5 s); settled seconds, minutes",
    "and hours come from the app's cache. A frame is the overview (one statement: the snapshot",
    "with that count inside) and one panel in turn: failure groups (one statement, the newest",
    "2,000 failures of the hour) or workers (three or four small statements).",
  ].join("\n");
  return { suite: "top", title: "Throughput history and top frames", body, targets };
}
