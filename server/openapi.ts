import {
  MAX_DESCRIPTION_LENGTH,
  MAX_NAME_LENGTH,
  MAX_PARAMS_BYTES,
  MAX_PARAMS_DEPTH,
} from "../lib/input/task_input.ts";
import { VERSION } from "../lib/version.ts";

const error = { $ref: "#/components/schemas/Error" };
const json = (schema: unknown, description: string) => ({
  description,
  content: { "application/json": { schema } },
});
const errors = (...codes: number[]) =>
  Object.fromEntries(codes.map((c) => [String(c), json(error, ERROR_TEXT[c] ?? "Error")]));
const ERROR_TEXT: Record<number, string> = {
  400: "Invalid query value or body",
  401: "Missing or wrong bearer token",
  403: "Write routes are disabled (start with --allow-write)",
  404: "No task matches the id or prefix",
  409: "Ambiguous prefix, or the transition is not allowed from the task's status",
  503: "Database unavailable or too busy: try again after Retry-After seconds",
};
const q = (name: string, description: string, schema: unknown = { type: "string" }) => ({
  name,
  in: "query",
  required: false,
  description,
  schema,
});
const idParam = {
  name: "id",
  in: "path",
  required: true,
  description: "Full task id or a unique prefix",
  schema: { type: "string" },
};

/** The OpenAPI 3 document served at /openapi.json; a test checks it lists exactly the app's routes. */
export function openApiDocument(): Record<string, unknown> {
  return {
    openapi: "3.0.3",
    info: {
      title: "seedtask",
      version: VERSION,
      description:
        "The task table operations of the seedtask CLI over HTTP; bodies equal the CLI's --json output.",
    },
    components: {
      securitySchemes: { bearer: { type: "http", scheme: "bearer" } },
      schemas: {
        Error: {
          type: "object",
          required: ["error"],
          properties: {
            error: {
              type: "object",
              required: ["code", "message"],
              properties: {
                code: { type: "string" },
                message: { type: "string" },
                candidates: { type: "array", items: { type: "string" } },
              },
            },
          },
        },
        Task: {
          type: "object",
          additionalProperties: true,
          properties: {
            id: { type: "string", format: "uuid" },
            status: {
              type: "string",
              enum: ["created", "queued", "running", "completed", "failed", "cancelled", "retry"],
            },
            type: { type: "string" },
            description: { type: "string", nullable: true },
            domain: { type: "string", nullable: true },
            drift_score: { type: "number" },
            attempts: { type: "integer" },
            locked_by: { type: "string", nullable: true },
            locked_at: { type: "string", format: "date-time", nullable: true },
            run_after: { type: "string", format: "date-time", nullable: true },
            params: {},
            result: { nullable: true },
            error: { type: "string", nullable: true },
            created_at: { type: "string", format: "date-time" },
            updated_at: { type: "string", format: "date-time" },
          },
        },
        TransitionReport: {
          type: "object",
          properties: {
            changed: { type: "array", items: { $ref: "#/components/schemas/Task" } },
            refused: {
              type: "array",
              items: {
                type: "object",
                properties: {
                  id: { type: "string" },
                  status: { type: "string" },
                  message: { type: "string" },
                },
              },
            },
          },
        },
      },
    },
    paths: {
      "/tasks": {
        get: {
          summary: "List tasks, newest first (seedtask list --json)",
          parameters: [
            q("status", "Statuses, comma-separated or repeated"),
            q("type", "Task type"),
            q("domain", "Domain"),
            q("search", "Text in description or error"),
            q("limit", "Page size, 1-1000 (default 50)", {
              type: "integer",
              minimum: 1,
              maximum: 1000,
            }),
            q("sort", "updated (default) or created", {
              type: "string",
              enum: ["updated", "created"],
            }),
            q("after", "next_cursor of the previous page"),
            q("total", "Also count every match", { type: "boolean" }),
          ],
          responses: {
            "200": json({
              type: "object",
              properties: {
                items: { type: "array", items: { $ref: "#/components/schemas/Task" } },
                next_cursor: { type: "string", nullable: true },
                total: { type: "integer" },
              },
            }, "A page of tasks"),
            ...errors(400, 401, 503),
          },
        },
        post: {
          summary: "Enqueue a task (seedtask enqueue --json); needs --allow-write and the token",
          security: [{ bearer: [] }],
          requestBody: {
            required: true,
            content: {
              "application/json": {
                schema: {
                  type: "object",
                  required: ["type"],
                  additionalProperties: false,
                  properties: {
                    type: { type: "string", minLength: 1, maxLength: MAX_NAME_LENGTH },
                    params: {
                      description:
                        `Any JSON, at most ${MAX_PARAMS_BYTES} bytes and ${MAX_PARAMS_DEPTH} ` +
                        "levels deep; no NUL (\\u0000) in strings or keys",
                    },
                    description: { type: "string", maxLength: MAX_DESCRIPTION_LENGTH },
                    domain: { type: "string", maxLength: MAX_NAME_LENGTH },
                    drift_score: { type: "number" },
                    run_after: {
                      type: "string",
                      description: "ISO-8601 time or a duration from now (5m)",
                    },
                    status: { type: "string", enum: ["queued", "created"] },
                  },
                },
              },
            },
          },
          responses: {
            "201": json({ $ref: "#/components/schemas/Task" }, "The new task"),
            ...errors(400, 401, 403, 503),
          },
        },
      },
      "/tasks/{id}": {
        get: {
          summary: "One task by id or unique prefix (seedtask show --json)",
          parameters: [idParam],
          responses: {
            "200": json({ $ref: "#/components/schemas/Task" }, "The task"),
            ...errors(400, 401, 404, 409, 503),
          },
        },
      },
      "/tasks/{id}/cancel": {
        post: {
          summary: 'Cancel a task (seedtask cancel --json); body {"force": true} for a running one',
          security: [{ bearer: [] }],
          parameters: [idParam],
          responses: {
            "200": json({ $ref: "#/components/schemas/TransitionReport" }, "Cancelled"),
            ...errors(400, 401, 403, 404, 409, 503),
          },
        },
      },
      "/tasks/{id}/retry": {
        post: {
          summary: "Put a failed or cancelled task back in the queue (seedtask retry --json)",
          security: [{ bearer: [] }],
          parameters: [idParam],
          responses: {
            "200": json({ $ref: "#/components/schemas/TransitionReport" }, "Requeued"),
            ...errors(400, 401, 403, 404, 409, 503),
          },
        },
      },
      "/stats": {
        get: {
          summary: "Statistics and health (seedtask stats --json)",
          parameters: [
            q("top", "Types, domains and tasks listed (default 10)", { type: "integer" }),
            q("days", "Days of activity (default 7)", { type: "integer" }),
            q("long_running", "Duration, e.g. 10m"),
            q("high_attempts", "Attempts threshold (default 3)", { type: "integer" }),
            q("exact", "Count every row even on a large table", { type: "boolean" }),
          ],
          responses: { "200": json({ type: "object" }, "Statistics"), ...errors(400, 401, 503) },
        },
      },
      "/check": {
        get: {
          summary: "Graded health (seedtask check --json): 200 OK or WARNING, 503 CRITICAL",
          parameters: [
            q("max_lag", "WARN:CRIT, e.g. 5m:15m"),
            q("max_stuck", "WARN:CRIT counts"),
            q("max_failure_rate", "WARN:CRIT, e.g. 5%:20%"),
            q("max_queued", "WARN:CRIT counts"),
            q("long_running", "Duration after which a lease-less running task is stuck"),
          ],
          responses: {
            "200": json({ type: "object" }, "OK or WARNING"),
            "503": json({ type: "object" }, "CRITICAL, or the database is unavailable"),
            ...errors(400, 401),
          },
        },
      },
      "/health": {
        get: {
          summary: "Liveness and a database ping",
          responses: {
            "200": json({ type: "object" }, "Up, database reachable"),
            "503": json({ type: "object" }, "Database unreachable"),
          },
        },
      },
      "/metrics": {
        get: {
          summary: "Prometheus metrics (text exposition format)",
          responses: {
            "200": {
              description: "Metrics",
              content: { "text/plain": { schema: { type: "string" } } },
            },
            ...errors(401, 503),
          },
        },
      },
      "/openapi.json": {
        get: {
          summary: "This document",
          responses: { "200": json({ type: "object" }, "OpenAPI 3") },
        },
      },
    },
  };
}
