/**
 * The options of the history reports: throughput buckets (`GET /throughput`,
 * `getThroughput()`) and latency percentiles (`GET /latency`, `getLatency()`), with their
 * defaults — here and nowhere else.
 */
import { z } from "zod";
import {
  duration,
  parseInput,
  text,
  type Transformed,
  wholeNumber,
  withDefault,
} from "./fields.ts";
import { MAX_NAME_LENGTH } from "./new_task.ts";

/** The defaults, as a user would type them. */
export const HISTORY_DEFAULTS = {
  minutes: 60,
  hours: 48,
  window: "1h",
  sample: 10_000,
} as const;

/** Longest per-minute series. */
export const MAX_MINUTES = 180;
/** Longest per-hour series (a week). */
export const MAX_HOURS = 168;

const typeField = () =>
  text("type", MAX_NAME_LENGTH).optional().meta({ description: "Only this task type" });

/** Throughput options by their query names. */
export const ThroughputOptionsObject = z.strictObject({
  type: typeField(),
  minutes: withDefault(wholeNumber("minutes", 1, MAX_MINUTES), HISTORY_DEFAULTS.minutes)
    .meta({ description: "Per-minute buckets, the last one open" }),
  hours: withDefault(wholeNumber("hours", 0, MAX_HOURS), HISTORY_DEFAULTS.hours)
    .meta({ description: "Per-hour buckets, the last one open (0: none)" }),
});

/** Options of `getThroughput()` and `GET /throughput`. */
export interface ThroughputOptions {
  /** Only tasks of this type (one cached history per type asked for). */
  type?: string;
  /** Per-minute buckets, the last one open. Default 60, at most {@link MAX_MINUTES}. */
  minutes?: number;
  /** Per-hour buckets, the last one open. Default 48, at most {@link MAX_HOURS}; 0 for none. */
  hours?: number;
  /** Evaluate as of this instant instead of the database's now() (tests). */
  now?: Date;
}

/** {@link ThroughputOptions} checked, with their defaults. */
export type ResolvedThroughputOptions =
  & Required<Omit<ThroughputOptions, "now" | "type">>
  & Pick<ThroughputOptions, "now" | "type">;

/**
 * The type of {@link ThroughputOptionsObject}.
 *
 * @internal A zod type, another package's (denoland/deno#27364).
 */
export type ThroughputOptionsObjectType = typeof ThroughputOptionsObject;

/** {@link ThroughputOptionsObject} as the library's options. */
export const ThroughputOptionsSchema: Transformed<
  ThroughputOptionsObjectType,
  ResolvedThroughputOptions
> = ThroughputOptionsObject.transform((
  o,
): ResolvedThroughputOptions => ({ ...o, type: o.type }));

/** Checks a library caller's {@link ThroughputOptions} and applies the defaults. */
export function resolveThroughputOptions(
  options: ThroughputOptions = {},
): ResolvedThroughputOptions {
  const r = parseInput(ThroughputOptionsSchema, {
    type: options.type,
    minutes: options.minutes,
    hours: options.hours,
  });
  return options.now === undefined ? r : { ...r, now: options.now };
}

/** Latency options by their query names. */
export const LatencyOptionsObject = z.strictObject({
  type: typeField(),
  window: withDefault(duration("window", "age", { positive: true }), HISTORY_DEFAULTS.window)
    .meta({ description: "Tasks that finished within this long, e.g. 1h" }),
  sample: withDefault(wholeNumber("sample", 100, 100_000), HISTORY_DEFAULTS.sample)
    .meta({ description: "At most this many of the most recent finishes are measured" }),
});

/** Options of `getLatency()` and `GET /latency`. */
export interface LatencyOptions {
  /** Only tasks of this type. */
  type?: string;
  /** Tasks that finished within this many milliseconds. Default 1 hour. */
  windowMs?: number;
  /** At most this many of the most recent finishes are measured. Default 10,000. */
  sample?: number;
  /** Evaluate as of this instant instead of the database's now() (tests). */
  now?: Date;
}

/** {@link LatencyOptions} checked, with their defaults. */
export interface ResolvedLatencyOptions {
  /** Only this task type. */
  type?: string;
  /** The window the percentiles cover, milliseconds back from now. */
  windowMs: number;
  /** At most this many of the most recent finishes are measured. */
  sample: number;
  /** Evaluate as of this instant (tests). */
  now?: Date;
}

/**
 * The type of {@link LatencyOptionsObject}.
 *
 * @internal A zod type, another package's (denoland/deno#27364).
 */
export type LatencyOptionsObjectType = typeof LatencyOptionsObject;

/** {@link LatencyOptionsObject} as the library's options. */
export const LatencyOptionsSchema: Transformed<LatencyOptionsObjectType, ResolvedLatencyOptions> =
  LatencyOptionsObject.transform((
    o,
  ): ResolvedLatencyOptions => ({ type: o.type, windowMs: o.window, sample: o.sample }));

/** Checks a library caller's {@link LatencyOptions} and applies the defaults. */
export function resolveLatencyOptions(options: LatencyOptions = {}): ResolvedLatencyOptions {
  const r = parseInput(LatencyOptionsSchema, {
    type: options.type,
    window: options.windowMs === undefined ? undefined : `${options.windowMs}ms`,
    sample: options.sample,
  });
  return options.now === undefined ? r : { ...r, now: options.now };
}
