/**
 * Issue 11 item 5: errors have one shape. A port already in use is one line with a hint and
 * exit 1; every error class says its own exit code and HTTP status, and the HTTP app answers
 * each domain error with that status; every non-zero exit is one thrown error.
 */
import assert from "node:assert/strict";
import {
  AmbiguousTaskIdError,
  ConnectionError,
  DatabaseError,
  IncompatibleTableError,
  InvalidInputError,
  isUsageError,
  LeaseColumnsMissingError,
  OutOfRangeError,
  RejectedValueError,
  SeedtaskError,
  TableNotFoundError,
  TaskNotFoundError,
  UsageError,
} from "../lib/errors.ts";
import { resolveConfig } from "../lib/config.ts";
import { connect } from "../lib/db.ts";
import { createDispatcher } from "../lib/dispatch/dispatcher.ts";
import { createApp } from "../server/app.ts";
import { insertFixture, TEST_DSN, testSchema } from "./helpers.ts";
import { runMain } from "./run_main.ts";

function oneLine(text: string): void {
  assert.equal(text.trimEnd().split("\n").length, 1, `expected one line:\n${text}`);
  assert.doesNotMatch(text, /\n\s+at |Uncaught|unexpected failure/, "no stack trace");
}

Deno.test("a port already in use is one line with a hint and exit 1: serve, dispatch --metrics-port", async () => {
  await using t = await testSchema();
  const held = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = String((held.addr as Deno.NetAddr).port);
  try {
    const serve = await runMain([...t.args, "serve", "--port", port]);
    assert.equal(serve.code, 1, serve.stderr);
    oneLine(serve.stderr);
    assert.equal(
      serve.stderr,
      `error: cannot listen on 127.0.0.1:${port}: the address is in use — stop what listens ` +
        "there or choose another --port\n",
    );
    const dispatch = await runMain([
      ...t.args,
      ...["dispatch", "--exec", "true", "--once", "--metrics-port", port],
    ]);
    assert.equal(dispatch.code, 1, dispatch.stderr);
    oneLine(dispatch.stderr);
    assert.equal(
      dispatch.stderr,
      `error: cannot listen on 127.0.0.1:${port}: the address is in use — stop what listens ` +
        "there or choose another --metrics-port\n",
    );
  } finally {
    held.close();
  }
});

Deno.test("usage errors are their own class, not TypeError or RangeError", () => {
  for (const err of [new InvalidInputError("x"), new OutOfRangeError("y")]) {
    assert.ok(err instanceof UsageError);
    assert.ok(err instanceof SeedtaskError);
    assert.ok(!(err instanceof TypeError) && !(err instanceof RangeError));
    assert.equal(err.exitCode, 2);
    assert.equal(err.httpStatus, 400);
  }
  assert.ok(isUsageError(new RejectedValueError("The database refused a value: x", "22P02")));
  // A programming error is never taken for the caller's mistake.
  assert.ok(!isUsageError(new TypeError("Cannot read properties of undefined")));
  assert.ok(!isUsageError(new RangeError("Invalid array length")));
});

Deno.test("each error class decides its HTTP status and what a client is told", () => {
  const cases: Array<[SeedtaskError, number, string, RegExp]> = [
    [new InvalidInputError('Invalid limit "0"'), 400, "invalid_input", /Invalid limit "0"/],
    [new TaskNotFoundError("abcd"), 404, "not_found", /Task "abcd" not found/],
    [new AmbiguousTaskIdError("ab", ["ab1", "ab2"], false), 409, "ambiguous_id", /ambiguous/],
    [
      new ConnectionError("unreachable", "Cannot connect to db.internal:5432/prod"),
      503,
      "database_unavailable",
      /^The database is unavailable$/,
    ],
    [
      new TableNotFoundError('Table "secret_schema.tasks" does not exist'),
      503,
      "table_not_found",
      /^The task table does not exist; run `seedtask migrate`$/,
    ],
    [
      new IncompatibleTableError('Table "x.tasks" is not a task table'),
      503,
      "incompatible_table",
      /^The task table does not have the shape seedtask needs$/,
    ],
    [
      new LeaseColumnsMissingError("secret_schema.tasks"),
      503,
      "lease_columns_missing",
      /^The task table has no lease columns/,
    ],
    [
      new DatabaseError("canceling statement on db.internal", "57014"),
      503,
      "database_error",
      /^The query timed out$/,
    ],
    [
      new DatabaseError("relation on db.internal", "42P01"),
      503,
      "database_error",
      /^Database error$/,
    ],
    [
      new SeedtaskError("whatever", "Something on db.internal"),
      500,
      "internal_error",
      /^Internal error$/,
    ],
  ];
  for (const [err, status, code, message] of cases) {
    assert.equal(err.httpStatus, status, err.name);
    const body = err.httpError();
    assert.equal(body.code, code, err.name);
    assert.match(body.message, message, err.name);
    if (status >= 500) assert.doesNotMatch(body.message, /db\.internal|secret_schema/, err.name);
    assert.equal(err.exitCode, err instanceof UsageError ? 2 : 1, err.name);
  }
  assert.deepEqual(new AmbiguousTaskIdError("ab", ["ab1", "ab2"], false).httpError().candidates, [
    "ab1",
    "ab2",
  ]);
});

Deno.test("the HTTP app answers each domain error with its own status", async () => {
  await using t = await testSchema();
  await insertFixture(t);
  const app = createApp({ db: t.db, log: () => {} });
  const status = async (path: string) => {
    const res = await app.request(path);
    const body = await res.json();
    return [res.status, body.error?.code] as const;
  };
  assert.deepEqual(await status("/tasks/0000"), [404, "not_found"]);
  assert.deepEqual(await status("/tasks/eeee"), [409, "ambiguous_id"]);
  assert.deepEqual(await status("/tasks/zz"), [400, "invalid_input"]);
  const db = connect(resolveConfig({ dsn: TEST_DSN, table: `${t.schema}.nope` }, {}));
  try {
    const res = await createApp({ db, log: () => {} }).request("/tasks");
    const body = await res.json();
    assert.equal(res.status, 503);
    assert.equal(body.error.code, "table_not_found");
    assert.doesNotMatch(JSON.stringify(body), new RegExp(t.schema), "no table name");
  } finally {
    await db.close();
  }
});

Deno.test("a dispatcher's misuse is the project's error, not a bare TypeError", async () => {
  await using t = await testSchema();
  assert.throws(() => createDispatcher({ db: t.db }), (err: unknown) => {
    assert.ok(err instanceof InvalidInputError);
    return true;
  });
  assert.throws(
    () => createDispatcher({ db: t.db, handlers: {}, concurrency: 0 }),
    (err: unknown) => err instanceof OutOfRangeError && /Invalid concurrency "0"/.test(err.message),
  );
});

Deno.test("serve refuses a token no Bearer header can carry, before anything starts", async () => {
  const r = await runMain([
    ...["--dsn", "postgres://postgres@127.0.0.1:1/x"],
    ...["serve", "--port", "0", "--token", "has spaces and !"],
  ]);
  assert.equal(r.code, 2, r.stderr);
  oneLine(r.stderr);
  assert.match(r.stderr, /^error: the token must be letters, digits and -\._~\+\/ /);
});

Deno.test("401 and 403 are the error shape; a 401 says how to authenticate", async () => {
  await using t = await testSchema();
  const token = "shape-token-0001";
  const post = (app: ReturnType<typeof createApp>, authorization?: string) =>
    app.request("/tasks", {
      method: "POST",
      headers: {
        "content-type": "application/json",
        ...(authorization ? { authorization } : {}),
      },
      body: JSON.stringify({ type: "x" }),
    });
  const app = createApp({ db: t.db, allowWrite: true, token });
  for (
    const [authorization, challenge] of [
      [undefined, 'Bearer realm="seedtask"'],
      ["Bearer wrong-token-0000", 'Bearer error="invalid_token"'],
      [`Basic ${token}`, 'Bearer error="invalid_request"'],
    ] as const
  ) {
    const res = await post(app, authorization);
    assert.equal(res.status, 401, authorization);
    assert.equal(res.headers.get("www-authenticate"), challenge, authorization);
    assert.deepEqual(await res.json(), {
      error: { code: "unauthorized", message: "Missing or wrong bearer token" },
    });
  }
  const readOnly = await post(createApp({ db: t.db, token }), `Bearer ${token}`);
  assert.equal(readOnly.status, 403);
  assert.equal((await readOnly.json()).error.code, "read_only");
});
