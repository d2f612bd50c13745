/**
 * The filter of a task list: `seedtask list`, `GET /tasks` and `listTasks()`. Text filters are
 * checked like stored values (a NUL byte or an over-long name is the client's mistake, not a
 * database error), the cursor against the sort it was made for.
 */
import { z } from "zod";
import { parseStatuses, type TaskStatus } from "../table/contract.ts";
import { decodeCursor, LIST_SORTS, type ListSort } from "./cursor.ts";
import { InvalidInputError, OutOfRangeError } from "../errors.ts";
import {
  checkJson,
  checkText,
  type Field,
  oneOf,
  parsed,
  parseInput,
  ruled,
  shown,
  text,
  type Transformed,
  wholeNumber,
  withDefault,
} from "./fields.ts";
import { MAX_NAME_LENGTH, MAX_PARAMS_DEPTH } from "./new_task.ts";

/** Page size when none is given. */
export const DEFAULT_LIST_LIMIT = 50;

/** Largest page the library and the CLI return. */
export const MAX_LIST_LIMIT = 10_000;

/** Longest `--search` / `search` text, in characters. */
export const MAX_SEARCH_LENGTH = 1_000;

/** Filters of `seedtask list`, `GET /tasks` and `TaskTableHelper.listTasks`. */
export interface ListFilter {
  /** One or several statuses (any of them). */
  statuses?: readonly TaskStatus[];
  /** One task type, or several (any of them). */
  type?: string | readonly string[];
  /** One domain, or several (any of them). */
  domain?: string | readonly string[];
  /**
   * Only tasks whose params contain these keys with these values (JSON containment,
   * `params @> '{"order_id": 42}'`, served by the `params_idx` GIN index).
   */
  params?: Readonly<Record<string, unknown>>;
  /** Case-insensitive text in description or error. */
  search?: string;
  /** Page size, 1..{@link MAX_LIST_LIMIT}. Default {@link DEFAULT_LIST_LIMIT}. */
  limit?: number;
  /** Newest first by updated_at (default) or created_at. */
  sort?: ListSort;
  /** `next_cursor` of the previous page. */
  after?: string;
}

/**
 * One key of a params filter: the task's `params` must hold `key` with one of `values`
 * (`--param n=3` accepts the number 3 and the text "3": a person typing it cannot say which
 * the producer stored).
 */
export interface ParamMatch {
  /** The params key. */
  key: string;
  /** Values it may hold (any of them). */
  values: unknown[];
}

/** A {@link ListFilter} checked, with its defaults, every list an array. */
export interface ResolvedListFilter {
  /** Marks a filter already checked (the builders do not check it again). */
  readonly resolved: true;
  /** Only these statuses. */
  statuses?: TaskStatus[];
  /** Only these task types. */
  types?: string[];
  /** Only these domains. */
  domains?: string[];
  /** Only tasks whose params match every one of these. */
  params?: ParamMatch[];
  /** Case-insensitive text in description or error. */
  search?: string;
  /** Page size. */
  limit: number;
  /** The sort order. */
  sort: ListSort;
  /** `next_cursor` of the previous page. */
  after?: string;
}

/** Most `--param` pairs in one filter. */
export const MAX_PARAM_PAIRS = 20;

/** Most values in one `--type` or `--domain` list. */
export const MAX_LIST_VALUES = 100;

/** Statuses, comma-separated, or repeated (an array), or both. */
export function statusList(key: string): Field<TaskStatus[]> {
  return parsed(z.union([z.string(), z.array(z.string())]), (value) => parseStatuses(value), {
    anyOf: [{ type: "string" }, { type: "array", items: { type: "string" } }],
  }).meta({ description: `Statuses, comma-separated or repeated (${key}=failed&${key}=retry)` });
}

/**
 * Names (types, domains), comma-separated, or repeated (an array), or both; each checked like a
 * stored value. A name containing a comma cannot be given this way (none of SeedCore's do).
 */
export function nameList(key: string): Field<string[]> {
  return parsed(z.union([z.string(), z.array(z.string())]), (value) => {
    const out: string[] = [];
    for (const part of (typeof value === "string" ? [value] : value).flatMap((v) => v.split(","))) {
      const name = part.trim();
      if (name === "") continue;
      checkText(name, key, MAX_NAME_LENGTH);
      if (!out.includes(name)) out.push(name);
    }
    if (out.length === 0) throw new InvalidInputError(`Invalid ${key} "": expected a name`);
    if (out.length > MAX_LIST_VALUES) {
      throw new OutOfRangeError(
        `Invalid value for "${key}": ${out.length} values, at most ${MAX_LIST_VALUES}`,
      );
    }
    return out;
  }, {
    anyOf: [{ type: "string" }, { type: "array", items: { type: "string" } }],
  }).meta({ description: `Any of these, comma-separated or repeated (${key}=a&${key}=b)` });
}

/** `"42"` also as the number 42, `"true"` as true, `"null"` as null: what a JSON producer may have stored. */
function literalForms(text: string): unknown[] {
  if (/^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?$/.test(text)) {
    const n = Number(text);
    return Number.isFinite(n) ? [text, n] : [text];
  }
  if (text === "true" || text === "false" || text === "null") return [text, JSON.parse(text)];
  return [text];
}

/**
 * Parses params filters: `key=value` texts (the CLI's `--param`, the query's `param`, repeated
 * or in an array; the value is everything after the first `=`), or a JSON object (the
 * library's `params`), each key matching exactly its value.
 */
export function parseParamFilter(
  value: string | readonly string[] | Readonly<Record<string, unknown>>,
  key = "param",
): ParamMatch[] {
  const out = new Map<string, unknown[]>();
  if (typeof value === "string" || Array.isArray(value)) {
    for (const pair of typeof value === "string" ? [value] : value as readonly string[]) {
      const eq = pair.indexOf("=");
      if (eq <= 0) {
        throw new InvalidInputError(
          `Invalid ${key} "${shown(pair)}": expected key=value, e.g. order_id=42`,
        );
      }
      const name = pair.slice(0, eq);
      const text = pair.slice(eq + 1);
      checkText(name, key, MAX_NAME_LENGTH);
      checkText(text, key, MAX_SEARCH_LENGTH);
      if (out.has(name)) {
        throw new InvalidInputError(
          `Invalid ${key} "${shown(pair)}": "${shown(name)}" given twice`,
        );
      }
      out.set(name, literalForms(text));
    }
  } else {
    checkJson(value, "params", { depth: MAX_PARAMS_DEPTH, bytes: MAX_SEARCH_LENGTH * 10 });
    for (const [name, v] of Object.entries(value)) {
      if (v !== undefined) out.set(name, [v]);
    }
  }
  if (out.size === 0) throw new InvalidInputError(`Invalid ${key}: expected key=value`);
  if (out.size > MAX_PARAM_PAIRS) {
    throw new OutOfRangeError(`Invalid ${key}: ${out.size} keys, at most ${MAX_PARAM_PAIRS}`);
  }
  return [...out].map(([k, values]) => ({ key: k, values }));
}

/** The params filter field: `key=value` texts or, from the library, a JSON object. */
function paramFilter(key: string): Field<ParamMatch[]> {
  return parsed(
    z.union([z.string(), z.array(z.string()), z.record(z.string(), z.unknown())]),
    (value) => parseParamFilter(value, key),
    { anyOf: [{ type: "string" }, { type: "array", items: { type: "string" } }] },
  ).meta({
    description: `Params containing key=value (JSON containment); repeat for several keys. ` +
      `A number, true, false or null also matches that JSON value`,
  });
}

/** A page size from `min` (0 where it means "everything") to `max`, default 50. */
export function pageSize(min: number, max: number): Field<number> {
  return withDefault(wholeNumber("limit", min, max), DEFAULT_LIST_LIMIT)
    .meta({ description: `Page size, ${min}-${max}` });
}

/** The fields of a list filter by their query names; the CLI's flags map to them. */
export const ListFilterObject = z.strictObject({
  status: statusList("status").optional(),
  type: nameList("type").optional(),
  domain: nameList("domain").optional(),
  param: paramFilter("param").optional(),
  search: text("search", MAX_SEARCH_LENGTH).optional()
    .meta({ description: "Text in description or error (case-insensitive)" }),
  sort: withDefault(oneOf("sort", LIST_SORTS), "updated")
    .meta({ description: "Newest first by updated_at or created_at" }),
  limit: pageSize(1, MAX_LIST_LIMIT),
  after: z.string().optional().meta({ description: "The next_cursor of the previous page" }),
});

/**
 * The library's filter from parsed fields; the cursor is checked here, against the sort.
 * For schemas that extend {@link ListFilterObject} (a server's page-size cap, the CLI's
 * `--limit 0`).
 */
export function toListFilter(
  o: z.output<typeof ListFilterObject>,
  ctx: z.core.$RefinementCtx,
): ResolvedListFilter {
  const after = o.after;
  // An empty cursor is no cursor (the first page), as it always was.
  if (after) ruled(ctx, after, () => decodeCursor(after, o.sort), ["after"]);
  return {
    resolved: true,
    statuses: o.status,
    types: o.type,
    domains: o.domain,
    params: o.param,
    search: o.search,
    sort: o.sort,
    limit: o.limit,
    after: o.after,
  };
}

/**
 * The type of {@link ListFilterObject}.
 *
 * @internal A zod type, another package's (denoland/deno#27364).
 */
export type ListFilterObjectType = typeof ListFilterObject;

/** {@link ListFilterObject} producing the library's {@link ResolvedListFilter}. */
export const ListFilterSchema: Transformed<ListFilterObjectType, ResolvedListFilter> =
  ListFilterObject.transform(toListFilter);

/**
 * Checks a library caller's {@link ListFilter} by the same rules, and applies the defaults.
 * A filter already resolved is returned as it is.
 */
export function resolveListFilter(
  filter: ListFilter | ResolvedListFilter = {},
): ResolvedListFilter {
  if ("resolved" in filter && filter.resolved === true) return filter;
  const f = filter as ListFilter;
  const list = (v: string | readonly string[] | undefined) =>
    v === undefined || (typeof v !== "string" && v.length === 0) ? undefined : v;
  return parseInput(ListFilterSchema, {
    status: f.statuses?.length ? f.statuses : undefined,
    type: list(f.type),
    domain: list(f.domain),
    param: f.params && Object.keys(f.params).length > 0 ? f.params : undefined,
    search: f.search,
    sort: f.sort,
    limit: f.limit,
    after: f.after,
  });
}
