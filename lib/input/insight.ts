/**
 * The options of the incident questions — `seedtask failures`, `seedtask leases`,
 * `seedtask workers` and their routes `GET /failures`, `GET /leases`, `GET /workers` — with
 * their defaults, here and nowhere else.
 */
import { z } from "zod";
import { parseDuration } from "../duration.ts";
import { DEFAULT_MAX_ATTEMPTS } from "../dispatch/backoff.ts";
import type { TaskStatus } from "../table/contract.ts";
import {
  duration,
  flag,
  parseInput,
  text,
  type Transformed,
  wholeNumber,
  withDefault,
} from "./fields.ts";
import { groupId } from "./transition.ts";
import { statusList } from "./list_filter.ts";
import { MAX_NAME_LENGTH } from "./new_task.ts";

/** The defaults of `failures`, as a user would type them. */
export const FAILURES_DEFAULTS = {
  since: "24h",
  status: "failed,retry",
  top: 20,
  sample: 10_000,
} as const;

/** Options of {@link getFailureGroups}. */
export interface FailureGroupsOptions {
  /** Failures updated within this long before now. Default 24h. */
  sinceMs?: number;
  /** Default failed and retry. */
  statuses?: readonly TaskStatus[];
  /** Only this task type. */
  type?: string;
  /** Only this domain. */
  domain?: string;
  /** Groups returned, largest first. Default 20. */
  top?: number;
  /**
   * The sample limit: when the window holds more failures, the newest this many are grouped
   * (and the answer says so, with the true total). Default 10,000.
   */
  sample?: number;
  /** Group every failure of the window, however many. */
  exact?: boolean;
  /** Evaluate as of this instant (tests). */
  now?: Date;
}

/** {@link FailureGroupsOptions} checked, with their defaults. */
export type ResolvedFailureGroupsOptions =
  & Required<Omit<FailureGroupsOptions, "now" | "type" | "domain">>
  & Pick<FailureGroupsOptions, "now" | "type" | "domain">;

/** The options of `failures` by their query names; the CLI's flags map to them. */
export const FailureGroupsObject = z.strictObject({
  since: withDefault(duration("since", "age", { positive: true }), FAILURES_DEFAULTS.since)
    .meta({ description: "Failures updated within this long, e.g. 24h" }),
  status: withDefault(statusList("status"), FAILURES_DEFAULTS.status),
  type: text("type", MAX_NAME_LENGTH).optional().meta({ description: "Only this task type" }),
  domain: text("domain", MAX_NAME_LENGTH).optional().meta({ description: "Only this domain" }),
  top: withDefault(wholeNumber("top", 1, 1000), FAILURES_DEFAULTS.top)
    .meta({ description: "How many groups, largest first" }),
  sample: withDefault(wholeNumber("sample", 1, 1_000_000), FAILURES_DEFAULTS.sample)
    .meta({ description: "Group at most the newest this many failures (the total is exact)" }),
  exact: withDefault(flag("exact"), false)
    .meta({ description: "Group every failure of the window, however many" }),
});

/**
 * The type of {@link FailureGroupsObject}.
 *
 * @internal A zod type, another package's (denoland/deno#27364).
 */
export type FailureGroupsObjectType = typeof FailureGroupsObject;

/** {@link FailureGroupsObject} producing the library's options. */
export const FailureGroupsSchema: Transformed<
  FailureGroupsObjectType,
  ResolvedFailureGroupsOptions
> = FailureGroupsObject.transform((
  o,
): ResolvedFailureGroupsOptions => ({
  sinceMs: o.since,
  statuses: o.status,
  type: o.type,
  domain: o.domain,
  top: o.top,
  sample: o.sample,
  exact: o.exact,
}));

/** Checks a library caller's {@link FailureGroupsOptions} and applies the defaults. */
export function resolveFailureGroupsOptions(
  options: FailureGroupsOptions = {},
): ResolvedFailureGroupsOptions {
  const resolved = parseInput(FailureGroupsSchema, {
    since: options.sinceMs === undefined ? undefined : `${options.sinceMs}ms`,
    status: options.statuses?.length ? options.statuses : undefined,
    type: options.type,
    domain: options.domain,
    top: options.top,
    sample: options.sample,
    exact: options.exact,
  });
  return { ...resolved, now: options.now };
}

/** The defaults of `leases`. */
export const LEASES_DEFAULTS = {
  stale_after: "2m",
  older_than: "15m",
  max_attempts: DEFAULT_MAX_ATTEMPTS,
  limit: 100,
} as const;

/** Options of {@link getLeases}. */
export interface LeasesOptions {
  /** A running task whose last heartbeat (or claim) is older than this is listed. Default 2m. */
  staleAfterMs?: number;
  /** requeue-stale's threshold for a running task without a lease. Default 15m. */
  olderThanMs?: number;
  /** requeue-stale's --max-attempts. Default 3. */
  maxAttempts?: number;
  /** Tasks listed (the counts cover all). Default 100. */
  limit?: number;
  /** Evaluate as of this instant (tests). */
  now?: Date;
}

/** {@link LeasesOptions} checked, with their defaults. */
export type ResolvedLeasesOptions = Required<Omit<LeasesOptions, "now">> & { now?: Date };

/** The options of `leases` by their query names. */
export const LeasesObject = z.strictObject({
  stale_after: withDefault(
    duration("stale_after", "age", { positive: true }),
    LEASES_DEFAULTS.stale_after,
  ).meta({ description: "List running tasks not heard from (heartbeat) for this long" }),
  older_than: withDefault(
    duration("older_than", "age", { positive: true }),
    LEASES_DEFAULTS.older_than,
  ).meta({ description: "requeue-stale's threshold for running tasks without a lease" }),
  max_attempts: withDefault(
    wholeNumber("max_attempts", 1, 1_000_000),
    LEASES_DEFAULTS.max_attempts,
  ).meta({ description: "requeue-stale's --max-attempts: what it would fail instead of retry" }),
  limit: withDefault(wholeNumber("limit", 1, 10_000), LEASES_DEFAULTS.limit)
    .meta({ description: "Tasks listed (the counts cover every one)" }),
});

/**
 * The type of {@link LeasesObject}.
 *
 * @internal A zod type, another package's (denoland/deno#27364).
 */
export type LeasesObjectType = typeof LeasesObject;

/** {@link LeasesObject} producing the library's options. */
export const LeasesSchema: Transformed<LeasesObjectType, ResolvedLeasesOptions> = LeasesObject
  .transform((o): ResolvedLeasesOptions => ({
    staleAfterMs: o.stale_after,
    olderThanMs: o.older_than,
    maxAttempts: o.max_attempts,
    limit: o.limit,
  }));

/** Checks a library caller's {@link LeasesOptions} and applies the defaults. */
export function resolveLeasesOptions(options: LeasesOptions = {}): ResolvedLeasesOptions {
  const ms = (v: number | undefined) => v === undefined ? undefined : `${v}ms`;
  const resolved = parseInput(LeasesSchema, {
    stale_after: ms(options.staleAfterMs),
    older_than: ms(options.olderThanMs),
    max_attempts: options.maxAttempts,
    limit: options.limit,
  });
  return { ...resolved, now: options.now };
}

/** Options of {@link listWorkers}. */
export interface WorkersOptions {
  /** Also list workers that stopped answering long ago (default: silent for at most 1d). */
  all?: boolean;
  /** Evaluate as of this instant (tests). */
  now?: Date;
}

/** How long a silent registered worker is still listed without `all`. */
export const SILENT_LISTED_MS = parseDuration("1d");

/** The options of `workers` by their query names. */
export const WorkersObject = z.strictObject({
  all: withDefault(flag("all"), false)
    .meta({ description: "Also list workers silent for more than a day" }),
});

/**
 * The type of {@link WorkersObject}.
 *
 * @internal A zod type, another package's (denoland/deno#27364).
 */
export type WorkersObjectType = typeof WorkersObject;

/** {@link WorkersObject} producing the library's options. */
export const WorkersSchema: Transformed<WorkersObjectType, WorkersOptions> = WorkersObject
  .transform((o): WorkersOptions => ({ all: o.all }));

/** `POST /failures/{group}/retry|cancel`: the group, from the path. */
export const FailureGroupParam = z.object({
  group: groupId("group").meta({
    description: "The failure group's id (12 hex digits, from GET /failures)",
    example: "ba5e7e9727db",
  }),
});

/**
 * `POST /failures/{group}/retry|cancel`'s body. A dry run unless told otherwise, as every
 * transition by filter (the CLI's `--yes`): the answer says how many tasks it would change.
 */
export const GroupActionSchema = z.strictObject({
  dry_run: withDefault(flag("dry_run"), true)
    .meta({ description: "Only report what would change (default); false applies it" }),
});
