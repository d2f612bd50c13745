import assert from "node:assert/strict";
import { DEFAULT_DSN, describeDsn, resolveConfig } from "../lib/config.ts";
import { formatDuration, parseDuration } from "../lib/duration.ts";
import { InvalidInputError } from "../lib/errors.ts";
import { parseStatuses } from "../lib/table/contract.ts";
import { parseTaskIdArg } from "../lib/queries/task_id.ts";

Deno.test("resolveConfig() takes --dsn over PG_DSN over SEEDCORE_PG_DSN over the seed's default", () => {
  const env = { PG_DSN: "postgres://a@h1/db1", SEEDCORE_PG_DSN: "postgres://b@h2/db2" };
  assert.equal(resolveConfig({ dsn: "postgres://c@h3/db3" }, env).dsn, "postgres://c@h3/db3");
  assert.equal(resolveConfig({}, env).dsn, "postgres://a@h1/db1");
  assert.equal(
    resolveConfig({}, { SEEDCORE_PG_DSN: env.SEEDCORE_PG_DSN }).dsn,
    env.SEEDCORE_PG_DSN,
  );
  const d = resolveConfig({}, {});
  assert.equal(d.dsn, DEFAULT_DSN);
  assert.equal(d.dsnSource, "default");
  assert.equal(d.table, "tasks");
  assert.equal(d.statementTimeoutMs, 30_000);
  assert.equal(d.prepare, true);
  assert.equal(
    resolveConfig({ statementTimeout: "2m", prepare: false }, {}).statementTimeoutMs,
    120_000,
  );
  assert.equal(resolveConfig({ table: "core.tasks" }, {}).table, "core.tasks");
  assert.throws(() => resolveConfig({ table: "a.b.c" }, {}), InvalidInputError);
  assert.throws(() => resolveConfig({ table: 'x"; drop table y; --' }, {}), InvalidInputError);
});

Deno.test("describeDsn() never includes the user or password", () => {
  assert.equal(
    describeDsn("postgresql://postgres:pw@postgresql:5432/seedcore"),
    "postgresql:5432/seedcore",
  );
  assert.equal(describeDsn("postgres://u:p@10.0.0.5/app?sslmode=require"), "10.0.0.5:5432/app");
  assert.equal(
    describeDsn("postgres://u@/app?host=/var/run/postgresql"),
    "/var/run/postgresql:5432/app",
  );
});

Deno.test("parseDuration() reads unit durations and refuses bare numbers", () => {
  assert.equal(parseDuration("30s"), 30_000);
  assert.equal(parseDuration("1h30m"), 5_400_000);
  assert.equal(parseDuration("250ms"), 250);
  assert.equal(parseDuration("1.5m"), 90_000);
  assert.equal(parseDuration("7d"), 604_800_000);
  assert.equal(parseDuration("0"), 0);
  for (const bad of ["", "10", "5 m", "m", "-5s", "5x", "1h 30m"]) {
    assert.throws(() => parseDuration(bad), InvalidInputError, bad);
  }
  assert.equal(formatDuration(252_000), "4m 12s");
  assert.equal(formatDuration(3_900_000), "1h 5m");
  assert.equal(formatDuration(90_000_000), "1d 1h");
});

Deno.test("parseStatuses() accepts lists and repeats, rejects unknown names", () => {
  assert.deepEqual(parseStatuses("queued,retry"), ["queued", "retry"]);
  assert.deepEqual(parseStatuses(["Queued", "retry,queued"]), ["queued", "retry"]);
  assert.throws(() => parseStatuses("queued,done"), /Unknown status "done"/);
  assert.throws(() => parseStatuses(","), /Empty status list/);
});

Deno.test("parseTaskIdArg() turns a prefix into a primary-key range", () => {
  assert.deepEqual(parseTaskIdArg("1A2B"), {
    kind: "prefix",
    prefix: "1a2b",
    low: "1a2b0000-0000-0000-0000-000000000000",
    high: "1a2bffff-ffff-ffff-ffff-ffffffffffff",
  });
  assert.deepEqual(parseTaskIdArg("1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d"), {
    kind: "full",
    id: "1a2b3c4d-5e6f-7a8b-9c0d-1e2f3a4b5c6d",
  });
  for (const bad of ["", "g123", "1a2b%", "1".repeat(33)]) {
    assert.throws(() => parseTaskIdArg(bad), InvalidInputError, bad);
  }
});
