/** The HTTP server on a real socket: many concurrent clients, a database outage, the process. */
import assert from "node:assert/strict";
import { resolveConfig } from "../lib/config.ts";
import { connect, type Db } from "../lib/db.ts";
import { getTaskStatistics, type StatsOptions } from "../lib/queries/task_stats.ts";
import { createApp } from "../server/app.ts";
import { eventually, insertFixture, spawnCli, TEST_DSN, testSchema } from "./helpers.ts";

Deno.test("200 parallel /stats requests on a socket share a few database loads, none fail", async () => {
  await using t = await testSchema();
  await insertFixture(t);
  let loads = 0;
  const loadStats = (db: Db, options: StatsOptions) => {
    loads++;
    return getTaskStatistics(db, options);
  };
  // The cache's clock stands still until the test moves it: however long a burst takes on a
  // busy machine, it is answered within one TTL.
  let clock = 0;
  const app = createApp({ db: t.db, cacheTtlMs: 1000, cacheClock: () => clock, loadStats });
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, app.fetch);
  try {
    const url = `http://127.0.0.1:${server.addr.port}`;
    const burst = async (path: string) => {
      const res = await Promise.all(Array.from({ length: 200 }, () => fetch(url + path)));
      const bodies = await Promise.all(res.map((r) => r.text()));
      return { codes: res.map((r) => r.status), bodies };
    };
    const stats = await burst("/stats");
    assert.ok(stats.codes.every((c) => c === 200), `statuses ${new Set(stats.codes)}`);
    assert.equal(new Set(stats.bodies).size, 1, "every client got the same answer");
    assert.equal(loads, 1, `200 requests caused ${loads} loads`);
    assert.equal(JSON.parse(stats.bodies[0]!).status_counts.running, 3);

    const before = loads;
    const metrics = await burst("/metrics");
    assert.ok(metrics.codes.every((c) => c === 200));
    assert.ok(loads - before <= 2, `200 /metrics caused ${loads - before} loads`);

    // After the TTL the next request reads the database again.
    clock += 1001;
    const again = loads;
    await fetch(url + "/stats").then((r) => r.text());
    assert.equal(loads, again + 1);
  } finally {
    await server.shutdown();
  }
});

/** A TCP proxy in front of PostgreSQL that the test can cut and restore. */
function proxy(target: { hostname: string; port: number }) {
  let listener: Deno.Listener | null = null;
  const conns = new Set<Deno.Conn>();
  let port = 0;
  const start = () => {
    listener = Deno.listen({ hostname: "127.0.0.1", port });
    port = (listener.addr as Deno.NetAddr).port;
    const l = listener;
    (async () => {
      for await (const client of l) {
        try {
          const upstream = await Deno.connect(target);
          conns.add(client).add(upstream);
          client.readable.pipeTo(upstream.writable).catch(() => {});
          upstream.readable.pipeTo(client.writable).catch(() => {});
        } catch {
          client.close();
        }
      }
    })().catch(() => {});
  };
  start();
  return {
    get port() {
      return port;
    },
    cut() {
      listener?.close();
      listener = null;
      for (const c of conns) {
        try {
          c.close();
        } catch { /* closed */ }
      }
      conns.clear();
    },
    restore: start,
  };
}

Deno.test("/health is 503 while the database is gone and recovers by itself when it is back", async () => {
  await using t = await testSchema();
  const url = new URL(TEST_DSN);
  const p = proxy({ hostname: url.hostname, port: Number(url.port || 5432) });
  const db = connect(resolveConfig({
    dsn: `postgres://${url.username}@127.0.0.1:${p.port}${url.pathname}`,
    table: t.table,
  }, {}));
  const app = createApp({ db, log: () => {} });
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, app.fetch);
  const base = `http://127.0.0.1:${server.addr.port}`;
  const status = async (path: string) => {
    const r = await fetch(base + path);
    await r.body?.cancel();
    return r.status;
  };
  try {
    assert.equal(await status("/health"), 200);
    assert.equal(await status("/tasks"), 200);
    p.cut(); // connections killed mid-run, nothing listening
    await eventually(async () => (await status("/health")) === 503, 10_000, "health 503");
    assert.equal(await status("/tasks"), 503);
    p.restore();
    await eventually(async () => (await status("/health")) === 200, 15_000, "health back to 200");
    assert.equal(await status("/tasks"), 200);
  } finally {
    p.cut();
    await server.shutdown();
    await db.close();
  }
});

Deno.test("seedtask serve logs one line per request and stops cleanly on SIGTERM", async () => {
  await using t = await testSchema();
  await insertFixture(t);
  const p = spawnCli([...t.args, "serve", "--port", "0"]);
  try {
    await p.waitFor(/listening on http:\/\/127\.0\.0\.1:\d+ \(read-only/);
    const port = Number(p.stdout().match(/listening on http:\/\/127\.0\.0\.1:(\d+) /)![1]);
    const r = await fetch(`http://127.0.0.1:${port}/tasks?status=failed&limit=2`);
    const body = await r.json();
    assert.equal(body.items.length, 2);
    const missing = await fetch(`http://127.0.0.1:${port}/tasks/0000`);
    await missing.body?.cancel();
    assert.equal(missing.status, 404);
    await p.waitFor(/GET \/tasks\/0000 404 \d+ms/);
    assert.match(p.stdout(), /Z GET \/tasks 200 \d+ms\n/);
  } finally {
    p.child.kill("SIGTERM");
  }
  assert.equal(await p.exit(), 0);
  assert.match(p.stdout(), /seedtask serve stopped\n$/);
});
