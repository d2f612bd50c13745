/**
 * Issue 10 item 2: a DSN never reaches output, a malformed one is a usage error, an empty
 * --dsn is refused rather than ignored, and the unix-socket form connects.
 */
import assert from "node:assert/strict";
import { dsnPassword, resolveConfig, scrubSecrets } from "../lib/config.ts";
import { runSecrets } from "../main.ts";
import { connect } from "../lib/db.ts";
import { InvalidInputError } from "../lib/errors.ts";
import { runCli, serverTest, TEST_DSN, testSchema } from "./helpers.ts";
import { runMain } from "./run_main.ts";

const SECRET = "S3cretPW!";
/** Malformed in different places; each carries the password. */
const MALFORMED = [
  `postgres://u:${SECRET}@127.0.0.1:54x3/db`, // the issue's: a port that is not a number
  `postgres://u:${SECRET}@127.0.0.1:99999/db`, // a port out of range
  `postgres://u:${SECRET}@bad host/db`, // a space in the host
  `postgres://u:${SECRET}/x@127.0.0.1:5432/db`, // an unencoded "/" in the password
  `postgres://u:${SECRET}@[::1/db`, // an unclosed IPv6 bracket
];

function oneLine(text: string): void {
  assert.equal(text.trimEnd().split("\n").length, 1, `expected one line:\n${text}`);
  assert.doesNotMatch(text, /\n\s+at /, "no stack trace");
}

Deno.test("a malformed --dsn is exit 2, one line, and never shows the password", async () => {
  const r = await runCli(["--dsn", MALFORMED[0]!, "list"]);
  assert.equal(r.code, 2, r.stderr);
  assert.equal(r.stdout, "");
  oneLine(r.stderr);
  assert.match(r.stderr, /^error: invalid DSN from --dsn: /);
  assert.doesNotMatch(r.stderr, /S3cret/);
  for (const dsn of MALFORMED) {
    const m = await runMain(["--dsn", dsn, "stats", "--json"]);
    assert.equal(m.code, 2, `${dsn}: ${m.stderr}`);
    assert.equal(m.stdout, "");
    oneLine(m.stderr);
    assert.doesNotMatch(m.stderr, /S3cret/, dsn);
  }
});

Deno.test("a malformed PG_DSN or SEEDCORE_PG_DSN is exit 2 and never shows the password", async () => {
  for (const name of ["PG_DSN", "SEEDCORE_PG_DSN"]) {
    for (const dsn of MALFORMED) {
      const r = await runMain(["show", "abcd"], { env: { [name]: dsn } });
      assert.equal(r.code, 2, `${name}=${dsn}: ${r.stderr}`);
      oneLine(r.stderr);
      assert.match(r.stderr, new RegExp(`^error: invalid DSN from ${name}: `));
      assert.doesNotMatch(r.stdout + r.stderr, /S3cret/);
    }
  }
});

Deno.test("seedtask check with a malformed DSN is UNKNOWN (3) on stdout without the password", async () => {
  const r = await runMain(["check"], { env: { PG_DSN: MALFORMED[0]! } });
  assert.equal(r.code, 3, r.stdout + r.stderr);
  oneLine(r.stdout);
  assert.match(r.stdout, /^SEEDTASK UNKNOWN - Invalid DSN from PG_DSN: /);
  assert.doesNotMatch(r.stdout + r.stderr, /S3cret/);
  for (const dsn of MALFORMED) {
    const m = await runMain(["--dsn", dsn, "check", "--json"]);
    assert.equal(m.code, 3);
    assert.equal(JSON.parse(m.stdout).state, "UNKNOWN");
    assert.doesNotMatch(m.stdout + m.stderr, /S3cret/, dsn);
  }
});

Deno.test("an empty --dsn is refused, not replaced by PG_DSN or the default", async () => {
  const r = await runMain(["--dsn", "", "list"], {
    env: { PG_DSN: "postgres://postgres@127.0.0.1:1/elsewhere" },
  });
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /^error: invalid DSN from --dsn: it is empty/);
  oneLine(r.stderr);
  assert.throws(() => resolveConfig({ dsn: "" }, {}), InvalidInputError);
  // An empty variable is the same as an unset one, as in any shell profile.
  assert.equal(
    resolveConfig({}, { PG_DSN: "", SEEDCORE_PG_DSN: "postgres://b@h2/db2" }).dsn,
    "postgres://b@h2/db2",
  );
});

Deno.test("resolveConfig() accepts the DSN forms libpq documents", () => {
  for (
    const dsn of [
      "postgres://u:p@h:5432/db",
      "postgresql://u:p%40ss@h/db?sslmode=disable",
      "postgres://u@[::1]:5432/db",
      "postgres://u:pw@/db?host=/run/postgresql",
      "postgresql:///db?host=/var/run/postgresql&port=5432",
      "postgres://u:pw@%2Fvar%2Frun%2Fpostgresql/db",
      "postgres://u@h1:5432,h2:5433/db",
      "postgres://h/db",
    ]
  ) {
    assert.equal(resolveConfig({ dsn }, {}).dsn, dsn, dsn);
  }
  assert.equal(dsnPassword("postgres://u:p%40ss@h/db"), "p@ss");
});

serverTest(
  "the unix-socket DSN form connects through the socket directory",
  "PGlite listens on no unix socket",
  async () => {
    await using t = await testSchema();
    const database = new URL(TEST_DSN).pathname.slice(1);
    // The test server's own socket directory and port (/var/run/postgresql and 5432 on Debian).
    const [{ dirs, port }] = await t.sql`
      select current_setting('unix_socket_directories') as dirs,
             current_setting('port') as port` as unknown as [{ dirs: string; port: string }];
    const dir = dirs.split(",")[0]!.trim();
    for (
      const dsn of [
        `postgres://postgres:unused-pw@/${database}?host=${dir}&port=${port}`,
        `postgres://postgres@${encodeURIComponent(dir)}:${port}/${database}`,
      ]
    ) {
      const db = connect(resolveConfig({ dsn, table: t.table }, {}));
      try {
        // inet_server_addr() is null on a unix-socket connection.
        const [row] = await db.sql`select inet_server_addr() as addr, current_database() as db`;
        assert.equal(row!.addr, null, dsn);
        assert.equal(row!.db, database);
        assert.equal(db.target, `${dir}:${port}/${database}`);
      } finally {
        await db.close();
      }
    }
    const r = await runMain([
      "--dsn",
      `postgres://postgres:unused-pw@/${database}?host=${dir}&port=${port}`,
      "--table",
      t.table,
      "list",
      "--json",
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), {
      items: [],
      next_cursor: null,
      total: 0,
      total_exact: true,
      total_note: null,
    });
  },
);

Deno.test("runSecrets() finds the password of every DSN the run was given, however malformed", () => {
  const secrets = runSecrets(
    ["--dsn=postgres://u:pa/ss-word@h/db", "list", "--token", "tok-abcdef12"],
    {
      PG_DSN: `postgres://u:${SECRET}@127.0.0.1:54x3/db`,
      SEEDCORE_PG_DSN: "postgres://u:p%40ss@h/d",
    },
  );
  const line = scrubSecrets(
    `Invalid URL: 'postgres://u:${SECRET}@127.0.0.1:54x3/db' pa/ss-word ss-word p@ss tok-abcdef12`,
    secrets,
  );
  assert.doesNotMatch(line, /S3cret|ss-word|p@ss|tok-abcdef12/, line);
});
