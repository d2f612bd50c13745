/**
 * The filter of a task list: `seedtask list`, `GET /tasks` and `listTasks()`. Text filters are
 * checked like stored values (a NUL byte or an over-long name is the client's mistake, not a
 * database error), the cursor against the sort it was made for.
 */
import { z } from "zod";
import { parseStatuses, type TaskStatus } from "../table/contract.ts";
import { decodeCursor, LIST_SORTS, type ListSort } from "./cursor.ts";
import {
  type Field,
  oneOf,
  parsed,
  parseInput,
  ruled,
  text,
  type Transformed,
  wholeNumber,
  withDefault,
} from "./fields.ts";
import { MAX_NAME_LENGTH } from "./new_task.ts";

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
  /** Only this task type (exact match). */
  type?: string;
  /** Only this domain (exact match). */
  domain?: string;
  /** Case-insensitive text in description or error. */
  search?: string;
  /** Page size, 1..{@link MAX_LIST_LIMIT}. Default {@link DEFAULT_LIST_LIMIT}. */
  limit?: number;
  /** Newest first by updated_at (default) or created_at. */
  sort?: ListSort;
  /** `next_cursor` of the previous page. */
  after?: string;
}

/** A {@link ListFilter} checked, with its defaults. */
export type ResolvedListFilter = ListFilter & { limit: number; sort: ListSort };

/** Statuses, comma-separated, or repeated (an array), or both. */
export function statusList(key: string): Field<TaskStatus[]> {
  return parsed(z.union([z.string(), z.array(z.string())]), (value) => parseStatuses(value), {
    anyOf: [{ type: "string" }, { type: "array", items: { type: "string" } }],
  }).meta({ description: `Statuses, comma-separated or repeated (${key}=failed&${key}=retry)` });
}

/** A page size from `min` (0 where it means "everything") to `max`, default 50. */
export function pageSize(min: number, max: number): Field<number> {
  return withDefault(wholeNumber("limit", min, max), DEFAULT_LIST_LIMIT)
    .meta({ description: `Page size, ${min}-${max}` });
}

/** The fields of a list filter by their query names; the CLI's flags map to them. */
export const ListFilterObject = z.strictObject({
  status: statusList("status").optional(),
  type: text("type", MAX_NAME_LENGTH).optional().meta({ description: "Only this task type" }),
  domain: text("domain", MAX_NAME_LENGTH).optional().meta({ description: "Only this domain" }),
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
    statuses: o.status,
    type: o.type,
    domain: o.domain,
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

/** Checks a library caller's {@link ListFilter} by the same rules, and applies the defaults. */
export function resolveListFilter(filter: ListFilter = {}): ResolvedListFilter {
  return parseInput(ListFilterSchema, {
    status: filter.statuses?.length ? filter.statuses : undefined,
    type: filter.type,
    domain: filter.domain,
    search: filter.search,
    sort: filter.sort,
    limit: filter.limit,
    after: filter.after,
  });
}
