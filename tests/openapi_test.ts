/**
 * Issue 11 item 1: `/openapi.json` is generated from the schemas the routes validate with. The
 * document lists exactly the app's routes; one valid request per documented route conforms to
 * the document (every parameter and body field documented, of its documented type), gets the
 * documented success status and an answer of the documented shape; an invalid parameter gets a
 * documented 400 in the error shape.
 */
import assert from "node:assert/strict";
import { createApp } from "../server/app.ts";
import { failureGroupId } from "../lib/queries/fingerprint.ts";
import { IDS, insertFixture, testSchema } from "./helpers.ts";

/** The fixture's failedRecent: "Max attempts (3) exceeded: connection reset by organism". */
const GROUP = failureGroupId("graph_embed", "connection reset by organism");

type Schema = Record<string, unknown>;

/** The web console's pages (server/console/): HTML for people, not part of the JSON API. */
const CONSOLE = /^\/$|^\/ui(\/|$)/;
interface Parameter {
  name: string;
  in: "query" | "path";
  required?: boolean;
  schema: Schema;
}
interface Operation {
  parameters?: Parameter[];
  requestBody?: { required?: boolean; content: Record<string, { schema: Schema }> };
  responses: Record<string, { content?: Record<string, { schema: Schema }> }>;
  security?: unknown[];
}
interface Document {
  openapi: string;
  paths: Record<string, Record<string, Operation>>;
  components: { schemas: Record<string, Schema>; securitySchemes: Record<string, Schema> };
}

/**
 * The problems of `value` against an OpenAPI 3.0 schema: the subset the document uses ($ref,
 * type, nullable, enum, properties, required, additionalProperties, items, anyOf, bounds).
 */
function validate(doc: Document, schema: Schema, value: unknown, at = "$"): string[] {
  if (typeof schema.$ref === "string") {
    const name = schema.$ref.replace("#/components/schemas/", "");
    const target = doc.components.schemas[name];
    if (!target) return [`${at}: no component ${name}`];
    return validate(doc, target, value, at);
  }
  if (value === null) return schema.nullable ? [] : [`${at}: null is not allowed`];
  const problems: string[] = [];
  if (Array.isArray(schema.anyOf)) {
    const each = (schema.anyOf as Schema[]).map((s) => validate(doc, s, value, at));
    if (each.every((p) => p.length > 0)) problems.push(`${at}: matches no anyOf branch`);
  }
  if (schema.enum && !(schema.enum as unknown[]).includes(value)) {
    problems.push(`${at}: ${JSON.stringify(value)} is not one of ${schema.enum}`);
  }
  const type = schema.type as string | undefined;
  const typeOf = Array.isArray(value) ? "array" : typeof value;
  if (type === "integer") {
    if (!Number.isInteger(value)) problems.push(`${at}: ${value} is not an integer`);
  } else if (type && type !== typeOf) {
    problems.push(`${at}: a ${typeOf}, documented as ${type}`);
    return problems;
  }
  if (typeof value === "number") {
    if (typeof schema.minimum === "number" && value < schema.minimum) problems.push(`${at}: < min`);
    if (typeof schema.maximum === "number" && value > schema.maximum) problems.push(`${at}: > max`);
  }
  if (typeof value === "string") {
    if (typeof schema.maxLength === "number" && value.length > schema.maxLength) {
      problems.push(`${at}: longer than ${schema.maxLength}`);
    }
    if (schema.format === "date-time" && Number.isNaN(Date.parse(value))) {
      problems.push(`${at}: ${value} is not a date-time`);
    }
    if (schema.format === "uuid" && !/^[0-9a-f]{8}-([0-9a-f]{4}-){3}[0-9a-f]{12}$/.test(value)) {
      problems.push(`${at}: ${value} is not a uuid`);
    }
  }
  if (Array.isArray(value) && schema.items) {
    value.forEach((v, i) =>
      problems.push(...validate(doc, schema.items as Schema, v, `${at}[${i}]`))
    );
  }
  if (typeOf === "object" && !Array.isArray(value)) {
    const object = value as Record<string, unknown>;
    const properties = (schema.properties ?? {}) as Record<string, Schema>;
    for (const key of (schema.required ?? []) as string[]) {
      if (!(key in object)) problems.push(`${at}: ${key} is required`);
    }
    for (const [key, v] of Object.entries(object)) {
      if (properties[key]) problems.push(...validate(doc, properties[key], v, `${at}.${key}`));
      else if (schema.additionalProperties === false) {
        problems.push(`${at}: ${key} is not documented`);
      } else if (typeof schema.additionalProperties === "object") {
        problems.push(...validate(doc, schema.additionalProperties as Schema, v, `${at}.${key}`));
      }
    }
  }
  return problems;
}

/** A query value as the type its parameter documents (query strings are text). */
function typed(schema: Schema, text: string): unknown {
  if (schema.type === "integer" || schema.type === "number") return Number(text);
  if (schema.type === "boolean") return text === "true" || text === "1" || text === "";
  return text;
}

interface Call {
  path: Record<string, string>;
  query?: Record<string, string>;
  body?: unknown;
  status: number;
}

const TOKEN = "openapi-token-1234";

/** One valid request per documented route (and its expected status), and one invalid one. */
const CALLS: Record<string, { valid: Call; invalid?: Call }> = {
  "GET /tasks": {
    valid: {
      path: {},
      query: {
        status: "failed,completed",
        type: "graph_embed",
        limit: "5",
        sort: "created",
        total: "true",
      },
      status: 200,
    },
    invalid: { path: {}, query: { limit: "0" }, status: 400 },
  },
  "GET /tasks/{id}": {
    valid: { path: { id: IDS.failedRecent.slice(0, 8) }, status: 200 },
    invalid: { path: { id: "zz" }, status: 400 },
  },
  "POST /tasks": {
    valid: {
      path: {},
      body: {
        type: "graph_embed",
        params: { graph: 1 },
        description: "from the openapi test",
        domain: "user_9",
        drift_score: 0.25,
        run_after: "2030-01-01T00:00:00Z",
        status: "created",
      },
      status: 201,
    },
    invalid: { path: {}, body: { type: "x", drift_score: "high" }, status: 400 },
  },
  "POST /tasks/batch": {
    valid: {
      path: {},
      query: { dry_run: "false" },
      body: [{ type: "graph_embed", params: { n: 1 } }, { type: "x", status: "created" }],
      status: 201,
    },
    invalid: { path: {}, body: [{ type: "x" }, { type: "" }], status: 400 },
  },
  "POST /tasks/{id}/cancel": {
    valid: { path: { id: IDS.queuedOld }, body: { force: false }, status: 200 },
    invalid: { path: { id: IDS.queuedRecent }, body: { force: "yes" }, status: 400 },
  },
  "POST /tasks/{id}/retry": {
    valid: { path: { id: IDS.failed2d }, status: 200 },
    invalid: { path: { id: "not-hex" }, status: 400 },
  },
  "POST /tasks/{id}/release": {
    valid: { path: { id: IDS.created1 }, status: 200 },
    invalid: { path: { id: "zz" }, status: 400 },
  },
  "POST /tasks/cancel": {
    valid: { path: {}, body: { type: "fact_search", force: false }, status: 200 },
    invalid: { path: {}, body: { force: true }, status: 400 },
  },
  "POST /tasks/retry": {
    valid: { path: {}, body: { status: "retry", yes: true }, status: 200 },
    invalid: { path: {}, body: { status: "bogus" }, status: 400 },
  },
  "POST /tasks/release": {
    valid: { path: {}, body: { domain: "user_1", older_than: "1m", yes: false }, status: 200 },
    invalid: { path: {}, body: { yes: "maybe", type: "x" }, status: 400 },
  },
  "POST /pause": {
    valid: {
      path: {},
      body: { type: "graph_embed", domain: "user_9", reason: "openapi", by: "test" },
      status: 200,
    },
    invalid: { path: {}, body: { type: "x", colour: "red" }, status: 400 },
  },
  "POST /resume": {
    valid: { path: {}, body: { type: "graph_embed", domain: "user_9" }, status: 200 },
    invalid: { path: {}, body: { domain: "user_9" }, status: 400 },
  },
  "GET /paused": { valid: { path: {}, status: 200 } },
  "GET /stats": {
    valid: {
      path: {},
      query: { top: "3", days: "2", long_running: "15m", high_attempts: "2", exact: "true" },
      status: 200,
    },
    invalid: { path: {}, query: { top: "0" }, status: 400 },
  },
  "GET /check": {
    valid: {
      path: {},
      query: {
        max_lag: "3d:4d", // the retried task above is claimable since its creation, 2 days ago
        max_stuck: "1:5",
        max_failure_rate: "50%:90%",
        max_queued: "10:20",
        long_running: "10m",
      },
      status: 200,
    },
    invalid: { path: {}, query: { max_lag: "soon" }, status: 400 },
  },
  "GET /failures": {
    valid: {
      path: {},
      query: {
        since: "3d",
        status: "failed,retry",
        type: "graph_embed",
        top: "5",
        sample: "100",
        exact: "false",
      },
      status: 200,
    },
    invalid: { path: {}, query: { since: "forever" }, status: 400 },
  },
  "POST /failures/{group}/retry": {
    valid: { path: { group: GROUP }, body: { dry_run: true }, status: 200 },
    invalid: { path: { group: "not-a-group" }, status: 400 },
  },
  "POST /failures/{group}/cancel": {
    valid: { path: { group: GROUP }, body: { dry_run: false }, status: 200 },
    invalid: { path: { group: GROUP }, body: { dry_run: "maybe" }, status: 400 },
  },
  "GET /leases": {
    valid: {
      path: {},
      query: { stale_after: "5m", older_than: "10m", max_attempts: "3", limit: "10" },
      status: 200,
    },
    invalid: { path: {}, query: { limit: "0" }, status: 400 },
  },
  "GET /workers": {
    valid: { path: {}, query: { all: "true" }, status: 200 },
    invalid: { path: {}, query: { all: "sometimes" }, status: 400 },
  },
  "GET /throughput": {
    valid: { path: {}, query: { type: "graph_embed", minutes: "30", hours: "3" }, status: 200 },
    invalid: { path: {}, query: { minutes: "0" }, status: 400 },
  },
  "GET /latency": {
    valid: { path: {}, query: { type: "graph_embed", window: "2h", sample: "500" }, status: 200 },
    invalid: { path: {}, query: { window: "soon" }, status: 400 },
  },
  "GET /overview": {
    valid: { path: {}, query: { type: "graph_embed", long_running: "5m" }, status: 200 },
    invalid: { path: {}, query: { long_running: "0s" }, status: 400 },
  },
  "GET /health": { valid: { path: {}, status: 200 } },
  "GET /metrics": { valid: { path: {}, status: 200 } },
  "GET /openapi.json": { valid: { path: {}, status: 200 } },
};

Deno.test("GET /openapi.json lists exactly the routes the app serves", async () => {
  await using t = await testSchema();
  const app = createApp({ db: t.db });
  const doc = await (await app.request("/openapi.json")).json() as Document;
  assert.match(doc.openapi, /^3\.0\./);
  const documented = Object.entries(doc.paths).flatMap(([p, ops]) =>
    Object.keys(ops).map((m) => `${m.toUpperCase()} ${p.replace(/\{(\w+)\}/g, ":$1")}`)
  ).sort();
  const served = [
    ...new Set(
      app.routes.filter((r) => r.method !== "ALL" && !CONSOLE.test(r.path)).map((r) =>
        `${r.method} ${r.path}`
      ),
    ),
  ].sort();
  assert.deepEqual(documented, served);
  assert.deepEqual(
    Object.keys(CALLS).sort(),
    Object.entries(doc.paths).flatMap(([p, ops]) =>
      Object.keys(ops).map((m) => `${m.toUpperCase()} ${p}`)
    ).sort(),
    "every documented route has a request below",
  );
});

Deno.test("one request per documented route conforms to /openapi.json and gets its documented answer", async () => {
  await using t = await testSchema();
  await insertFixture(t);
  const app = createApp({ db: t.db, allowWrite: true, token: TOKEN });
  const doc = await (await app.request("/openapi.json")).json() as Document;
  assert.deepEqual(doc.components.securitySchemes.bearer, { type: "http", scheme: "bearer" });
  const failures: string[] = [];
  const request = async (route: string, op: Operation, call: Call, what: string) => {
    const [method, template] = route.split(" ") as [string, string];
    const problems: string[] = [];
    // The request, checked against the document before it is sent.
    const params = op.parameters ?? [];
    for (const p of params.filter((p) => p.required)) {
      if ((p.in === "path" ? call.path : call.query ?? {})[p.name] === undefined) {
        problems.push(`required ${p.in} parameter ${p.name} missing`);
      }
    }
    for (const [where, values] of [["path", call.path], ["query", call.query ?? {}]] as const) {
      for (const [name, text] of Object.entries(values)) {
        const p = params.find((p) => p.in === where && p.name === name);
        if (!p) problems.push(`${where} parameter ${name} is not documented`);
        else if (what === "valid") {
          problems.push(...validate(doc, p.schema, typed(p.schema, text), name));
        }
      }
    }
    if (call.body !== undefined) {
      const schema = op.requestBody?.content["application/json"]?.schema;
      if (!schema) problems.push("a body, documented as none");
      else if (what === "valid") problems.push(...validate(doc, schema, call.body, "body"));
    } else if (op.requestBody?.required) problems.push("the body is required");
    const path = template.replace(/\{(\w+)\}/g, (_, n) => encodeURIComponent(call.path[n]!));
    const query = new URLSearchParams(call.query ?? {}).toString();
    const headers: Record<string, string> = { "content-type": "application/json" };
    if (op.security) headers.authorization = `Bearer ${TOKEN}`;
    const res = await app.request(`${path}${query ? `?${query}` : ""}`, {
      method,
      headers,
      body: call.body === undefined ? undefined : JSON.stringify(call.body),
    });
    const text = await res.text();
    // The answer, checked against the document.
    if (res.status !== call.status) problems.push(`status ${res.status}, expected ${call.status}`);
    const documented = op.responses[String(res.status)];
    if (!documented) problems.push(`status ${res.status} is not documented`);
    const type = res.headers.get("content-type")!.split(";")[0]!;
    const content = documented?.content?.[type];
    if (documented && !content) problems.push(`content type ${type} is not documented`);
    if (content) {
      const body = type === "application/json" ? JSON.parse(text) : text;
      problems.push(...validate(doc, content.schema, body, "response"));
    }
    if (problems.length > 0) {
      failures.push(`${route} (${what}): ${problems.join("; ")}\n    ${text.slice(0, 300)}`);
    }
  };
  for (const [route, calls] of Object.entries(CALLS)) {
    const [method, path] = route.split(" ") as [string, string];
    const op = doc.paths[path]?.[method.toLowerCase()];
    assert.ok(op, `${route} is documented`);
    await request(route, op, calls.valid, "valid");
    if (calls.invalid) await request(route, op, calls.invalid, "invalid");
  }
  assert.deepEqual(failures, [], failures.join("\n"));
});

Deno.test("write routes are documented with the bearer security, read routes without", async () => {
  await using t = await testSchema();
  const doc = await (await createApp({ db: t.db }).request("/openapi.json")).json() as Document;
  for (const [path, ops] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(ops)) {
      if (method === "get") assert.equal(op.security, undefined, `GET ${path}`);
      else {
        assert.deepEqual(op.security, [{ bearer: [] }], `${method} ${path}`);
        for (const status of ["401", "403"]) assert.ok(op.responses[status], `${path} ${status}`);
      }
    }
  }
  // The parameters carry their rules and defaults from the schemas.
  const list = doc.paths["/tasks"]!.get!.parameters!;
  const limit = list.find((p) => p.name === "limit")!.schema;
  assert.deepEqual([limit.type, limit.minimum, limit.maximum, limit.default], [
    "integer",
    1,
    1000,
    50,
  ]);
  const stats = doc.paths["/stats"]!.get!.parameters!;
  assert.deepEqual(
    Object.fromEntries(stats.map((p) => [p.name, p.schema.default])),
    { top: 10, days: 7, long_running: "10m", high_attempts: 3, exact: false },
  );
});
