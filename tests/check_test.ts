import assert from "node:assert/strict";
import { checkHealth, parseThreshold } from "../lib/queries/check_health.ts";
import { InvalidInputError } from "../lib/errors.ts";
import { insertFixture, runCli, testSchema } from "./helpers.ts";
import { runMain } from "./run_main.ts";

Deno.test("parseThreshold() reads WARN:CRIT durations, counts and rates", () => {
  assert.deepEqual(parseThreshold("5m:15m", "duration", "--max-lag"), { warn: 300, crit: 900 });
  assert.deepEqual(parseThreshold("1h", "duration", "--max-lag"), { warn: null, crit: 3600 });
  assert.deepEqual(parseThreshold("10:", "count", "--max-stuck"), { warn: 10, crit: null });
  assert.deepEqual(parseThreshold("5%:20%", "rate", "--max-failure-rate"), {
    warn: 0.05,
    crit: 0.2,
  });
  assert.deepEqual(parseThreshold("0.1:0.5", "rate", "--max-failure-rate"), {
    warn: 0.1,
    crit: 0.5,
  });
  for (
    const [text, kind] of [
      ["15m:5m", "duration"],
      ["x", "count"],
      ["1:2:3", "count"],
      [":", "count"],
      ["150%", "rate"],
      ["2", "rate"],
      ["5", "duration"],
    ] as const
  ) {
    assert.throws(() => parseThreshold(text, kind, "--flag"), InvalidInputError, text);
  }
});

Deno.test("checkHealth() grades each metric against its thresholds", async () => {
  await using t = await testSchema();
  const now = new Date();
  await insertFixture(t, now);
  // fixture: lag 2h, 1 stuck, failure rate last hour 1/3, 3 queued
  const ok = await checkHealth(t.db, {
    lag: { warn: 3 * 3600, crit: 4 * 3600 },
    stuck: { warn: 1, crit: 2 },
    failure_rate: { warn: 0.5, crit: 0.9 },
    queued: { warn: 10, crit: 20 },
  }, { now });
  assert.equal(ok.state, "OK");
  assert.equal(ok.exit_code, 0);
  assert.deepEqual(ok.metrics.map((m) => [m.name, m.value]), [
    ["lag", 7200],
    ["stuck", 1],
    ["failure_rate", 1 / 3],
    ["queued", 3],
  ]);
  const warn = await checkHealth(t.db, { failure_rate: { warn: 0.3, crit: 0.5 } }, { now });
  assert.equal(warn.state, "WARNING");
  assert.equal(warn.exit_code, 1);
  const crit = await checkHealth(t.db, {
    stuck: { warn: 0, crit: 0 },
    failure_rate: { warn: 0.3, crit: null },
  }, { now });
  assert.equal(crit.state, "CRITICAL");
  assert.equal(crit.exit_code, 2);
});

Deno.test("seedtask check prints one plugin line with perfdata and exits 0/1/2", async () => {
  await using t = await testSchema();
  const written = Date.now();
  await insertFixture(t, new Date(written));
  // lag is the age of a task created 2h before the fixture was written: 7200 s plus however
  // long the test has run since (bounded by the clock, not by a guess at the machine's speed)
  const lagOf = (stdout: string) => {
    const text = stdout.replace(/lag (\d+)s/, "lag <lag>s").replace(/lag=(\d+)s/, "lag=<lag>s");
    const seen = [...stdout.matchAll(/lag=?\s?(\d+)s/g)].map((m) => Number(m[1]));
    const most = 7200 + Math.ceil((Date.now() - written) / 1000);
    for (const lag of seen) {
      assert.ok(lag >= 7200 && lag <= most, `lag ${lag}s not in 7200..${most}`);
    }
    return text;
  };
  const ok = await runMain([...t.args, "check", "--max-lag", "3h:4h", "--max-stuck", "1:5"]);
  assert.equal(ok.code, 0, ok.stderr);
  assert.match(
    lagOf(ok.stdout),
    /^SEEDTASK OK - lag <lag>s, stuck 1, failure rate 33\.3%, queued 3 \| lag=<lag>s;10800;14400;0; stuck=1;1;5;0; failure_rate=33\.33%;;;0;100 queued=3;;;0;\n$/,
  );
  const warn = await runMain([...t.args, "check", "--max-lag", "1h:3h"]);
  assert.equal(warn.code, 1);
  assert.match(lagOf(warn.stdout), /^SEEDTASK WARNING - lag <lag>s \(WARNING\), stuck 1,/);
  const crit = await runCli([
    ...t.args,
    "check",
    "--max-lag",
    "1h:3h",
    "--max-failure-rate",
    "10%:30%",
    "--max-queued",
    "2:10",
  ]);
  assert.equal(crit.code, 2);
  assert.match(
    lagOf(crit.stdout),
    /^SEEDTASK CRITICAL - failure rate 33\.3% \(CRITICAL\), lag <lag>s \(WARNING\), queued 3 \(WARNING\), stuck 1 \| lag=<lag>s;3600;10800;0; stuck=1;;;0; failure_rate=33\.33%;10;30;0;100 queued=3;2;10;0;\n$/,
  );
  const json = await runMain([...t.args, "check", "--max-stuck", "0:0", "--json"]);
  assert.equal(json.code, 2);
  const doc = JSON.parse(json.stdout);
  assert.equal(doc.state, "CRITICAL");
  assert.equal(doc.health.stuck, 1);
});

Deno.test("seedtask check exits 3 UNKNOWN for bad thresholds, bad flags and no database", async () => {
  await using t = await testSchema();
  const bad = await runMain([...t.args, "check", "--max-lag", "soon"]);
  assert.equal(bad.code, 3);
  assert.match(bad.stdout, /^SEEDTASK UNKNOWN - Invalid --max-lag threshold "soon"/);
  const flag = await runMain([...t.args, "check", "--max-everything", "1"]);
  assert.equal(flag.code, 3);
  assert.match(flag.stdout, /^SEEDTASK UNKNOWN - unknown option '--max-everything'/);
  const down = await runMain(["--dsn", "postgres://u:hunter2@127.0.0.1:1/x", "check", "--json"]);
  assert.equal(down.code, 3);
  const doc = JSON.parse(down.stdout);
  assert.equal(doc.state, "UNKNOWN");
  assert.match(doc.message, /Cannot connect to 127\.0\.0\.1:1\/x: connection refused/);
  assert.doesNotMatch(down.stdout + down.stderr, /hunter2/);
  const missing = await runMain(["--dsn", t.args[1]!, "--table", `${t.schema}.nope`, "check"]);
  assert.equal(missing.code, 3);
  assert.match(
    missing.stdout,
    /^SEEDTASK UNKNOWN - Table ".*\.nope" does not exist .*seedtask migrate/,
  );
});
