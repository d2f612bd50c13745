/**
 * `seedtask serve` through a database outage, on a private PostgreSQL cluster this test stops
 * and starts (never the shared server): requests during the outage are a prompt 503 with
 * Retry-After, and service resumes as soon as the database is back.
 */
import assert from "node:assert/strict";
import { resolveConfig } from "../lib/config.ts";
import { connect } from "../lib/db.ts";
import { ConnectionError, DatabaseError, TaskNotFoundError } from "../lib/errors.ts";
import { createApp } from "../server/app.ts";
import { DbGate, SERVE_CONNECT_OPTIONS, ShedError } from "../server/db_gate.ts";
import { eventually, spawnCli, within } from "./helpers.ts";
import { runMain } from "./run_main.ts";
import { HAS_PG_BIN, privateCluster } from "./private_pg.ts";

interface Answer {
  path: string;
  status: number;
  retryAfter: string | null;
  body: string;
  /** performance.now() when the whole response had arrived. */
  at: number;
}

async function call(base: string, path: string): Promise<Answer> {
  const res = await fetch(base + path);
  const body = await res.text();
  return {
    path,
    status: res.status,
    retryAfter: res.headers.get("retry-after"),
    body,
    at: performance.now(),
  };
}

/** `n` requests in flight at once, half on /tasks and half on /stats. */
function wave(base: string, n: number): Promise<Answer[]> {
  return Promise.all(
    Array.from({ length: n }, (_, i) => call(base, i % 2 === 0 ? "/tasks?limit=5" : "/stats")),
  );
}

/**
 * While the database is up the test sends no more requests at once than the pool has
 * connections, so none waits for one (a wait that could exceed the bound on a busy machine).
 */
const POOL = 10;

function assertShed(answers: Answer[], restartedAt: number): void {
  for (const a of answers) {
    assert.ok(a.at < restartedAt, `${a.path} was answered only after the database came back`);
    assert.equal(a.status, 503, `${a.path}: ${a.status} ${a.body}`);
    assert.match(a.retryAfter ?? "", /^[1-9]\d*$/, `${a.path}: Retry-After "${a.retryAfter}"`);
    const body = JSON.parse(a.body);
    assert.equal(typeof body.error?.code, "string", a.body);
    assert.equal(typeof body.error?.message, "string", a.body);
  }
}

Deno.test({
  name: "serve answers 503 + Retry-After to 64 clients while the database is down, and recovers",
  ignore: !HAS_PG_BIN,
  async fn() {
    await using pg = await privateCluster();
    const migrated = await runMain(["--dsn", pg.dsn, "migrate"]);
    assert.equal(migrated.code, 0, migrated.stderr);
    const enqueued = await runMain(["--dsn", pg.dsn, "enqueue", "--type", "outage_probe"]);
    assert.equal(enqueued.code, 0, enqueued.stderr);

    // No cache: every /stats request needs the database. Port 0: the log names the port.
    const serve = spawnCli([
      ...["--dsn", pg.dsn, "serve", "--port", "0"],
      ...["--cache-ttl", "0", "--pool", String(POOL)],
    ]);
    try {
      await serve.waitFor(/listening on http:\/\/127\.0\.0\.1:\d+ /);
      const base = serve.stdout().match(/listening on (http:\/\/127\.0\.0\.1:\d+) /)![1]!;
      for (const a of await wave(base, POOL)) assert.equal(a.status, 200, `${a.path}: ${a.body}`);

      // The database stays down until every request made meanwhile has been answered: a
      // request that waited for the database would hang the test (until its safety net).
      await pg.stop();
      const stoppedAt = performance.now();
      // The first wave meets the failure; the second arrives when it is known.
      const first = await within(wave(base, 64), "requests during the outage");
      const second = await within(wave(base, 64), "requests during the outage");
      const health = await call(base, "/health");
      const restartedAt = performance.now();
      await pg.start();
      assertShed(first, restartedAt);
      assertShed(second, restartedAt);
      assert.equal(health.status, 503, "/health tells the truth during the outage");

      // Back: the next requests succeed (no stale queued work or long reconnect backoff to wait
      // out), and all at once.
      const backAt = performance.now();
      await eventually(
        async () => (await call(base, "/tasks")).status === 200,
        15_000,
        "/tasks 200",
      );
      const recoveredMs = performance.now() - backAt;
      for (const a of await wave(base, POOL)) assert.equal(a.status, 200, `${a.path}: ${a.body}`);
      assert.equal((await call(base, "/health")).status, 200);
      const slowest = Math.max(...[...first, ...second].map((a) => a.at)) - stoppedAt;
      // deno-lint-ignore no-console -- the numbers the report quotes
      console.error(
        `outage: 128 requests answered 503 within ${Math.round(slowest)} ms of the stop; ` +
          `recovered ${Math.round(recoveredMs)} ms after the database was back`,
      );
    } finally {
      serve.child.kill("SIGTERM");
      await serve.exit();
    }
  },
});

Deno.test("DbGate opens on an unreachable database, fails fast, lets one probe through at a time, and closes when one succeeds", async () => {
  let now = 0;
  let probes = 0;
  let answer: { resolve(): void; reject(e: Error): void } | null = null;
  const gate = new DbGate({
    concurrency: 2,
    probeEveryMs: 1000,
    now: () => now,
    probe: () => {
      probes++;
      return new Promise<void>((resolve, reject) => (answer = { resolve, reject }));
    },
  });
  const unavailable = (e: unknown) =>
    e instanceof ShedError && e.code === "database_unavailable" && e.retryAfterS >= 1;

  // Two units run, a third request waits; the outage releases it at once.
  const r1 = await gate.acquire();
  const r2 = await gate.acquire();
  const queued = gate.acquire();
  assert.equal(gate.waiting, 1);
  gate.observe(new ConnectionError("unreachable", "Cannot connect: connection refused"));
  assert.equal(gate.circuitOpen, true);
  await assert.rejects(queued, unavailable);
  r1();
  r2();

  // The first probe goes at once; meanwhile everyone else is refused without waiting.
  const prober = gate.acquire();
  await assert.rejects(gate.acquire(), unavailable);
  assert.equal(probes, 1);
  answer!.reject(new Error("refused"));
  await assert.rejects(prober, unavailable);
  // The next probe only after probeEveryMs.
  now = 999;
  await assert.rejects(gate.acquire(), unavailable);
  assert.equal(probes, 1);
  now = 1000;
  const second = gate.acquire();
  answer!.resolve();
  const release = await second;
  assert.equal(probes, 2);
  assert.equal(gate.circuitOpen, false);
  release();
  assert.equal(gate.running, 0);
  assert.equal(gate.shed.database_unavailable, 4);

  // A missing row is no outage; a server shutting down is.
  gate.observe(new TaskNotFoundError("abcd"));
  assert.equal(gate.circuitOpen, false);
  gate.observe(new DatabaseError("the database system is shutting down", "57P03"));
  assert.equal(gate.circuitOpen, true);
  gate.reachable(); // what a successful /health does
  assert.equal(gate.circuitOpen, false);
  (await gate.acquire())();
});

Deno.test("a database that accepts connections but never answers costs a request the connect timeout, not a hang", async () => {
  // A listener that takes connections and never says a word (a hung server, a black hole).
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const held: Deno.Conn[] = [];
  const accepting = (async () => {
    try {
      for await (const conn of listener) held.push(conn);
    } catch { /* closed */ }
  })();
  const { port } = listener.addr as Deno.NetAddr;
  const db = connect(
    resolveConfig({ dsn: `postgres://postgres@127.0.0.1:${port}/x`, maxConnections: 4 }, {}),
    SERVE_CONNECT_OPTIONS,
  );
  const app = createApp({ db, log: () => {} });
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    // Four take the pool's connections, sixteen wait behind them: the four fail when their
    // connection attempts time out, the sixteen when that opens the circuit or their own wait
    // for a connection runs out, whichever comes first (the ceiling is for a hang, not a
    // measurement).
    const answers = await Promise.race([
      Promise.all(Array.from({ length: 20 }, async () => {
        const r = await app.request("/tasks");
        return { status: r.status, retryAfter: r.headers.get("retry-after"), body: await r.json() };
      })),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error("requests hung")), 30_000);
      }),
    ]);
    for (const a of answers) {
      assert.equal(a.status, 503, JSON.stringify(a.body));
      assert.match(a.retryAfter ?? "", /^[1-9]\d*$/);
      assert.ok(["database_unavailable", "overloaded"].includes(a.body.error.code), a.body);
    }
    assert.ok(answers.some((a) => a.body.error.code === "database_unavailable"));
    // The outage is known now: of the next requests one probes the database (and fails, after
    // the connect timeout), the others are refused without trying.
    for (const r of await Promise.all([app.request("/tasks"), app.request("/stats")])) {
      assert.equal(r.status, 503);
      assert.equal((await r.json()).error.code, "database_unavailable");
      assert.ok(r.headers.get("retry-after"));
    }
  } finally {
    clearTimeout(timer);
    // Every connection of the pool is stuck on the black hole, with nothing worth finishing:
    // drop them at once (db.close() alone gives them its 5 s grace, a third of this file's time).
    await db.sql.end({ timeout: 0 });
    await db.close();
    listener.close();
    for (const c of held) c.close();
    await accepting;
  }
});
