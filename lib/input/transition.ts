/**
 * What `cancel` and `retry` act on — task ids (or unique prefixes), or a filter — and how:
 * `seedtask cancel|retry`, `POST /tasks/{id}/cancel|retry` and the `…Where` functions.
 */
import { z } from "zod";
import { InvalidInputError } from "../errors.ts";
import type { TaskStatus } from "../table/contract.ts";
import { duration, flag, parseInput, ruled, text, withDefault } from "./fields.ts";
import { statusList } from "./list_filter.ts";
import { MAX_NAME_LENGTH } from "./new_task.ts";

/** Selects tasks for a bulk operation. Every field narrows the selection. */
export interface TaskFilter {
  statuses?: readonly TaskStatus[];
  type?: string;
  domain?: string;
  /** Only tasks not updated for at least this long. */
  olderThanMs?: number;
}

/** The fields of a task filter by their JSON names. */
const FILTER_FIELDS = {
  status: statusList("status").optional(),
  type: text("type", MAX_NAME_LENGTH).optional().meta({ description: "Only this task type" }),
  domain: text("domain", MAX_NAME_LENGTH).optional().meta({ description: "Only this domain" }),
  older_than: duration("older_than", "age").optional()
    .meta({ description: "Only tasks not updated for this long, e.g. 1h" }),
};

type FilterFields = z.output<z.ZodObject<typeof FILTER_FIELDS>>;

function toTaskFilter(o: FilterFields): TaskFilter | undefined {
  const given = o.status !== undefined || o.type !== undefined || o.domain !== undefined ||
    o.older_than !== undefined;
  return given
    ? { statuses: o.status, type: o.type, domain: o.domain, olderThanMs: o.older_than }
    : undefined;
}

/** A task filter alone (the library's `cancelWhere`, `retryWhere` and their previews). */
export const TaskFilterSchema = z.strictObject(FILTER_FIELDS)
  .transform((o): TaskFilter => toTaskFilter(o) ?? {});

/** The fields of a transition by their JSON names; the CLI's arguments and flags map to them. */
export const TransitionObject = z.strictObject({
  ids: z.array(z.string()).optional().meta({ description: "Task ids or unique prefixes" }),
  ...FILTER_FIELDS,
  force: withDefault(flag("force"), false)
    .meta({ description: "Also cancel running tasks (their dispatcher's result is refused)" }),
});

/** A transition: ids, a filter, or ids guarded by a filter; and whether to force it. */
export interface TransitionOptions {
  ids?: string[];
  filter?: TaskFilter;
  force: boolean;
}

/**
 * {@link TransitionObject} producing {@link TransitionOptions}: ids, a filter, or both — ids
 * with a filter change only the given tasks the filter matches
 * (`cancel --status running --force 1a2b3c4d`: "that task, if it is running").
 */
export const TransitionSchema = TransitionObject.transform((o, ctx): TransitionOptions => {
  const filter = toTaskFilter(o);
  const ids = o.ids?.length ? o.ids : undefined;
  ruled(ctx, o, () => {
    if (!ids && !filter) {
      throw new InvalidInputError("Give task ids or a filter (a status, type, domain or age)");
    }
  });
  return { ids, filter, force: o.force };
});

/** Checks a library caller's {@link TaskFilter} by the same rules. */
export function resolveTaskFilter(filter: TaskFilter): TaskFilter {
  return parseInput(TaskFilterSchema, {
    status: filter.statuses?.length ? filter.statuses : undefined,
    type: filter.type,
    domain: filter.domain,
    older_than: filter.olderThanMs === undefined ? undefined : `${filter.olderThanMs}ms`,
  });
}
