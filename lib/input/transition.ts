/**
 * What `cancel` and `retry` act on — task ids (or unique prefixes), or a filter — and how:
 * `seedtask cancel|retry`, `POST /tasks/{id}/cancel|retry` and the `…Where` functions.
 */
import { z } from "zod";
import { InvalidInputError } from "../errors.ts";
import type { TaskStatus } from "../table/contract.ts";
import {
  duration,
  type Field,
  flag,
  parsed,
  parseInput,
  ruled,
  shown,
  text,
  type Transformed,
  withDefault,
} from "./fields.ts";
import { GROUP_ID_PATTERN } from "../queries/fingerprint.ts";
import { statusList } from "./list_filter.ts";
import { MAX_NAME_LENGTH } from "./new_task.ts";

/** Selects tasks for a bulk operation. Every field narrows the selection. */
export interface TaskFilter {
  /** Only these statuses (default: every status the operation applies to). */
  statuses?: readonly TaskStatus[];
  /** Only this task type. */
  type?: string;
  /** Only this domain. */
  domain?: string;
  /** Only tasks not updated for at least this long. */
  olderThanMs?: number;
  /**
   * Only the failure group with this id (12 hex digits, from `seedtask failures`): tasks of
   * its type whose error has its fingerprint.
   */
  group?: string;
}

/** A failure group's id: 12 hex digits, as `seedtask failures` shows it. */
export function groupId(key: string): Field<string> {
  return parsed(z.string(), (value) => {
    const id = value.trim().toLowerCase();
    if (!GROUP_ID_PATTERN.test(id)) {
      throw new InvalidInputError(
        `Invalid ${key} "${shown(value)}": expected the 12-character id of a failure group ` +
          "(seedtask failures shows it)",
      );
    }
    return id;
  }, { type: "string", pattern: GROUP_ID_PATTERN.source });
}

/** The fields of a task filter by their JSON names. */
const FILTER_FIELDS = {
  status: statusList("status").optional(),
  type: text("type", MAX_NAME_LENGTH).optional().meta({ description: "Only this task type" }),
  domain: text("domain", MAX_NAME_LENGTH).optional().meta({ description: "Only this domain" }),
  older_than: duration("older_than", "age").optional()
    .meta({ description: "Only tasks not updated for this long, e.g. 1h" }),
  group: groupId("group").optional()
    .meta({ description: "Only this failure group (its id, from seedtask failures)" }),
};

type FilterFields = z.output<z.ZodObject<typeof FILTER_FIELDS>>;

function toTaskFilter(o: FilterFields): TaskFilter | undefined {
  const given = o.status !== undefined || o.type !== undefined || o.domain !== undefined ||
    o.older_than !== undefined || o.group !== undefined;
  return given
    ? {
      statuses: o.status,
      type: o.type,
      domain: o.domain,
      olderThanMs: o.older_than,
      group: o.group,
    }
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
  /** Task ids or unique prefixes to act on. */
  ids?: string[];
  /** The tasks to act on by filter; beside ids, it guards them (only those it matches change). */
  filter?: TaskFilter;
  /** Also cancel running tasks (their dispatcher's result is then refused). */
  force: boolean;
}

/**
 * The type of {@link TransitionObject}.
 *
 * @internal A zod type, another package's (denoland/deno#27364).
 */
export type TransitionObjectType = typeof TransitionObject;

/**
 * {@link TransitionObject} producing {@link TransitionOptions}: ids, a filter, or both — ids
 * with a filter change only the given tasks the filter matches
 * (`cancel --status running --force 1a2b3c4d`: "that task, if it is running").
 */
export const TransitionSchema: Transformed<TransitionObjectType, TransitionOptions> =
  TransitionObject.transform((o, ctx): TransitionOptions => {
    const filter = toTaskFilter(o);
    const ids = o.ids?.length ? o.ids : undefined;
    ruled(ctx, o, () => {
      if (!ids && !filter) {
        throw new InvalidInputError(
          "Give task ids or a filter (a status, type, domain, age or failure group)",
        );
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
    group: filter.group,
  });
}

/** A filter transition: the filter (at least one field), `force` and whether to apply it. */
export interface FilterTransition {
  /** Which tasks. */
  filter: TaskFilter;
  /** cancel: running tasks too. */
  force: boolean;
  /** Change them (`yes`); otherwise a dry run. */
  apply: boolean;
}

const YES = withDefault(flag("yes"), false)
  .meta({ description: "Apply; without it the answer is a dry run (count and sample)" });

function toFilterTransition(
  o: FilterFields & { force?: boolean; yes: boolean },
  ctx: z.core.$RefinementCtx,
): FilterTransition {
  const filter = toTaskFilter(o);
  ruled(ctx, o, () => {
    if (!filter) throw new InvalidInputError("Give a filter: a status, type, domain or older_than");
  });
  return { filter: filter ?? {}, force: o.force ?? false, apply: o.yes };
}

/** The body of `POST /tasks/cancel`: a filter, `force`, and `yes` to apply it. */
export const CancelFilterSchema = z.strictObject({
  ...FILTER_FIELDS,
  force: TransitionObject.shape.force,
  yes: YES,
}).transform(toFilterTransition);

/** The body of `POST /tasks/retry` and `POST /tasks/release`: a filter, and `yes` to apply it. */
export const FilterTransitionSchema = z.strictObject({ ...FILTER_FIELDS, yes: YES })
  .transform(toFilterTransition);
