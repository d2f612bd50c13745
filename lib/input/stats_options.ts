/**
 * The options of the statistics report: `seedtask stats`, `GET /stats` and
 * `getTaskStatistics()`, with their defaults — here and nowhere else.
 */
import { z } from "zod";
import { parseDuration } from "../duration.ts";
import {
  duration,
  type Field,
  flag,
  parseInput,
  type Transformed,
  wholeNumber,
  withDefault,
} from "./fields.ts";

/** What "long running" means when nobody says: a task running longer than this. */
export const DEFAULT_LONG_RUNNING = "10m";

/** {@link DEFAULT_LONG_RUNNING} in milliseconds. */
export const DEFAULT_LONG_RUNNING_MS: number = parseDuration(DEFAULT_LONG_RUNNING);

/** The defaults of the report's options, as a user would type them. */
export const STATS_DEFAULTS = {
  top: 10,
  days: 7,
  long_running: DEFAULT_LONG_RUNNING,
  high_attempts: 3,
} as const;

/**
 * `long_running`: a running task locked longer than this is long running (stats) and, without
 * a lease, stuck (stats and check). Greater than 0.
 */
export function longRunning(): Field<number> {
  return withDefault(duration("long_running", "age", { positive: true }), DEFAULT_LONG_RUNNING)
    .meta({ description: "A running task locked longer than this is long running, e.g. 10m" });
}

/** The report's options by their query names; the CLI's flags map to them. */
export const StatsOptionsObject = z.strictObject({
  top: withDefault(wholeNumber("top", 1, 1000), STATS_DEFAULTS.top)
    .meta({ description: "How many types, domains, long-running and high-attempt tasks to list" }),
  days: withDefault(wholeNumber("days", 1, 3650), STATS_DEFAULTS.days)
    .meta({ description: "Days of recent activity" }),
  long_running: longRunning(),
  high_attempts: withDefault(
    wholeNumber("high_attempts", 1, 1_000_000),
    STATS_DEFAULTS.high_attempts,
  ).meta({ description: "Tasks with at least this many attempts are listed" }),
  exact: withDefault(flag("exact"), false)
    .meta({ description: "Count every row even on a large table (no planner estimates)" }),
});

/** Options of `seedtask stats`, `GET /stats` and `TaskTableHelper.getTaskStatistics`. */
export interface StatsOptions {
  /** How many types, domains, long-running and high-attempt tasks to list. Default 10. */
  top?: number;
  /** Days of recent activity. Default 7. */
  days?: number;
  /** Running longer than this is "long running". Default 10m. */
  longRunningMs?: number;
  /** attempts >= this is "high attempts". Default 3. */
  highAttempts?: number;
  /** Evaluate as of this instant (tests). */
  now?: Date;
  /** Count every row even on a large table (no planner estimates). */
  exact?: boolean;
}

/** {@link StatsOptions} checked, with their defaults. */
export type ResolvedStatsOptions = Required<Omit<StatsOptions, "now">> & { now?: Date };

/**
 * The type of {@link StatsOptionsObject}.
 *
 * @internal A zod type, another package's (denoland/deno#27364).
 */
export type StatsOptionsObjectType = typeof StatsOptionsObject;

/** {@link StatsOptionsObject} producing the library's {@link ResolvedStatsOptions}. */
export const StatsOptionsSchema: Transformed<StatsOptionsObjectType, ResolvedStatsOptions> =
  StatsOptionsObject.transform((o): ResolvedStatsOptions => ({
    top: o.top,
    days: o.days,
    longRunningMs: o.long_running,
    highAttempts: o.high_attempts,
    exact: o.exact,
  }));

/** Checks a library caller's {@link StatsOptions} by the same rules, and applies the defaults. */
export function resolveStatsOptions(options: StatsOptions = {}): ResolvedStatsOptions {
  const resolved = parseInput(StatsOptionsSchema, {
    top: options.top,
    days: options.days,
    long_running: options.longRunningMs === undefined ? undefined : `${options.longRunningMs}ms`,
    high_attempts: options.highAttempts,
    exact: options.exact,
  });
  return options.now === undefined ? resolved : { ...resolved, now: options.now };
}
