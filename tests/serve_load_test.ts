/**
 * `serve` under load: the request log never piles up behind a slow stdout, and database work
 * waits in a bounded queue for a bounded time.
 */
import assert from "node:assert/strict";
import { resolveConfig } from "../lib/config.ts";
import { connect } from "../lib/db.ts";
import { createApp } from "../server/app.ts";
import { LineLog, MAX_PENDING_LINES } from "../server/line_log.ts";
import { eventually, insertFixture, serverTest, TEST_DSN, testSchema } from "./helpers.ts";

const tick = () => new Promise((r) => setTimeout(r, 0));

/** An output whose writes complete only while the test lets them. */
function gatedOutput() {
  const writes: string[] = [];
  let finish: (() => void) | null = null;
  let blocked = true;
  return {
    writes,
    write: (text: string): Promise<void> => {
      writes.push(text);
      if (!blocked) return Promise.resolve();
      return new Promise<void>((resolve) => (finish = resolve));
    },
    block() {
      blocked = true;
    },
    unblock() {
      blocked = false;
      finish?.();
      finish = null;
    },
  };
}

Deno.test("LineLog keeps at most maxPending lines behind an output that never completes, and counts the rest as dropped", async () => {
  const writes: string[] = [];
  const log = new LineLog((text) => {
    writes.push(text);
    return new Promise(() => {});
  }, { maxPending: 10 });
  for (let i = 0; i < 1000; i++) log.line(`line ${i}`);
  await tick();
  assert.equal(log.pending, 10);
  assert.equal(log.dropped, 990);
  assert.deepEqual(writes, ["line 0\n"], "one write at a time");
  for (let i = 0; i < 1000; i++) log.line(`more ${i}`);
  await tick();
  assert.equal(log.pending, 10, "still at the bound");
  assert.equal(log.dropped, 1990);
  assert.equal(await log.flush(50), false, "flush gives up on an output that never completes");
  log.close();
});

Deno.test("LineLog reports the dropped lines once the output takes lines again, in order", async () => {
  const out = gatedOutput();
  const log = new LineLog(out.write, { maxPending: 3, now: () => Date.parse("2025-01-01") });
  for (const l of ["a", "b", "c", "d", "e", "f"]) log.line(l);
  assert.equal(log.pending, 3);
  assert.equal(log.dropped, 3);
  out.unblock();
  assert.equal(await log.flush(), true);
  assert.deepEqual(out.writes, [
    "a\n",
    "2025-01-01T00:00:00.000Z dropped 3 log lines: the output did not keep up\nb\nc\n",
  ]);
  assert.equal(log.pending, 0);
  log.line("g");
  assert.equal(await log.flush(), true);
  assert.equal(out.writes.at(-1), "g\n", "nothing more to report");
  assert.equal(log.dropped, 3);
  log.close();
});

Deno.test("LineLog reports dropped lines at most once per interval", async () => {
  let now = 0;
  const out = gatedOutput();
  const log = new LineLog(out.write, { maxPending: 1, reportEveryMs: 10_000, now: () => now });
  const reports = () => out.writes.filter((w) => w.includes("dropped")).join("");
  log.line("a");
  log.line("b"); // dropped
  out.unblock();
  await tick();
  assert.match(reports(), /dropped 1 log line: /);

  out.block();
  log.line("c");
  log.line("d"); // dropped, within the interval of the first report
  out.unblock();
  await tick();
  assert.equal(out.writes.at(-1), "c\n");
  assert.equal(reports().match(/dropped/g)?.length, 1, "not reported yet");
  now = 10_000;
  log.line("e");
  await tick();
  assert.equal(
    out.writes.at(-1),
    "1970-01-01T00:00:10.000Z dropped 1 log line: the output did not keep up\ne\n",
  );
  assert.equal(log.dropped, 2);
  log.close();
});

const MAIN = new URL("../main.ts", import.meta.url).pathname;

function metric(text: string, name: string): number {
  const m = new RegExp(`^${name} (\\d+)$`, "m").exec(text);
  assert.ok(m, `no ${name} in /metrics:\n${text}`);
  return Number(m[1]);
}

Deno.test("seedtask serve with a stdout nobody reads keeps answering, holds at most the bound of log lines, and counts the dropped ones in /metrics and the log", async () => {
  await using t = await testSchema();
  await insertFixture(t);
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", "--quiet", MAIN, ...t.args, "serve", "--port", "0"],
    env: { NO_COLOR: "1" },
    stdin: "null",
    stdout: "piped", // and not read until the end: a pipe that fills and blocks
    stderr: "piped",
  }).spawn();
  const stderr = new Response(child.stderr).text();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let out = "";
  try {
    // The first line names the port (--port 0); after it, stdout is not read until the end.
    while (!/listening on http:\/\/127\.0\.0\.1:\d+ /.test(out)) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`serve exited: ${out}${await stderr}`);
      out += value;
    }
    const base = out.match(/listening on (http:\/\/127\.0\.0\.1:\d+) /)![1]!;
    await eventually(
      async () => {
        try {
          const r = await fetch(`${base}/health`);
          await r.body?.cancel();
          return r.ok;
        } catch {
          return false;
        }
      },
      30_000,
      "serve to answer",
    );

    // Far more log lines than the pipe (64 KiB, about 1,500 lines) and the bound hold.
    const requests = MAX_PENDING_LINES + 4000;
    let next = 0;
    await Promise.all(Array.from({ length: 32 }, async () => {
      while (next < requests) {
        next++;
        const r = await fetch(`${base}/no-such-route`);
        await r.body?.cancel();
        assert.equal(r.status, 404);
      }
    }));
    const metrics = await (await fetch(`${base}/metrics`)).text();
    assert.equal(metric(metrics, "seedtask_log_lines_pending"), MAX_PENDING_LINES);
    const dropped = metric(metrics, "seedtask_log_lines_dropped_total");
    assert.ok(dropped > 0, `${dropped} dropped`);

    // Reading stdout lets the backlog out, led by the count of what was lost.
    const reported = () =>
      [...out.matchAll(/Z dropped (\d+) log lines: the output did not keep up\n/g)]
        .reduce((sum, m) => sum + Number(m[1]), 0);
    while (reported() < dropped) {
      const { value, done } = await reader.read();
      if (done) break;
      out += value;
    }
    assert.ok(reported() >= dropped, "the log says how many lines it dropped");
    const pumping = (async () => {
      while (true) {
        const { value, done } = await reader.read();
        if (done) return;
        out += value;
      }
    })();
    const after = await (await fetch(`${base}/metrics`)).text();
    assert.equal(metric(after, "seedtask_log_lines_dropped_total"), reported());
    await eventually(
      async () => {
        const m = await (await fetch(`${base}/metrics`)).text();
        return metric(m, "seedtask_log_lines_pending") <= 1;
      },
      20_000,
      "the backlog to drain",
    );
    child.kill("SIGTERM");
    assert.equal((await child.status).code, 0, await stderr);
    await pumping;
    assert.match(out, /seedtask serve stopped\n$/);
    assert.match(out, /Z GET \/no-such-route 404 \d+ms\n/);
  } finally {
    try {
      child.kill("SIGKILL");
    } catch { /* exited */ }
    await child.status;
    await reader.cancel().catch(() => {});
    await stderr.catch(() => {});
  }
});

serverTest(
  "requests beyond the pool wait in a bounded queue for a bounded time, then get 503 + Retry-After",
  "PGlite is one session: a lock one connection holds makes no other connection wait",
  async () => {
    await using t = await testSchema();
    await insertFixture(t);
    const db = connect(resolveConfig({ dsn: TEST_DSN, table: t.table, maxConnections: 2 }, {}));
    const app = createApp({ db, log: () => {}, shedding: { maxWaiting: 2, maxWaitMs: 300 } });
    // A transaction holding an exclusive lock on the table: /tasks queries wait for it.
    const locker = await t.sql.reserve();
    try {
      await locker`begin`;
      await locker`lock table ${locker(t.schema)}.tasks in access exclusive mode`;
      const call = async () => {
        const r = await app.request("/tasks?limit=1");
        return { status: r.status, retryAfter: r.headers.get("retry-after"), body: await r.json() };
      };
      // Two requests take both units and wait on the lock in PostgreSQL.
      const running = [call(), call()];
      await eventually(
        async () => {
          const [row] = await t.sql<{ n: number }[]>`
        select count(*)::int as n from pg_stat_activity
        where application_name = 'seedtask' and wait_event_type = 'Lock'
          and query like ${`%${t.schema}%`}`;
          return row?.n === 2;
        },
        20_000,
        "two queries waiting on the lock",
      );

      // Three more: two wait (the queue's bound) until their wait runs out, one is refused at
      // once. All are answered while the lock is still held: none reached the database.
      let timer: ReturnType<typeof setTimeout> | undefined;
      const ceiling = new Promise<never>((_, reject) =>
        timer = setTimeout(() => reject(new Error("shed requests waited for the database")), 20_000)
      );
      const shed = await Promise.race([Promise.all([call(), call(), call()]), ceiling])
        .finally(() => clearTimeout(timer));
      for (const r of shed) {
        assert.equal(r.status, 503, JSON.stringify(r.body));
        assert.equal(r.retryAfter, "1");
        assert.equal(r.body.error.code, "overloaded");
      }
      assert.deepEqual(
        shed.map((r) => r.body.error.message).sort(),
        [
          "Too busy: 2 requests are already waiting for the database",
          "Too busy: No database connection was free within 300 ms",
          "Too busy: No database connection was free within 300 ms",
        ],
      );

      await locker`commit`;
      for (const r of await Promise.all(running)) assert.equal(r.status, 200);
      // Nothing is left waiting: the next request gets a unit at once.
      assert.equal((await call()).status, 200);
    } finally {
      await locker`rollback`.catch(() => {});
      locker.release();
      await db.close();
    }
  },
);
