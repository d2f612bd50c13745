/**
 * The thresholds of the monitoring check: `seedtask check`, `GET /check` and `checkHealth()`.
 * Each is `WARN:CRIT`; one value alone is the critical level.
 */
import { z } from "zod";
import { parseDuration } from "../duration.ts";
import { InvalidInputError } from "../errors.ts";
import { parsed, shown, type Transformed } from "./fields.ts";
import { longRunning } from "./stats_options.ts";

/** Alert when the value is above `warn` (WARNING) or above `crit` (CRITICAL). */
export interface Threshold {
  /** WARNING above this value; null for no warning level. */
  warn: number | null;
  /** CRITICAL above this value; null for no critical level. */
  crit: number | null;
}

/** What the check measures. */
export type MetricName = "lag" | "stuck" | "failure_rate" | "queued";

/** How a threshold is written: a duration (`5m`), a count (`10`) or a rate (`5%`, `0.05`). */
export type ThresholdKind = "duration" | "count" | "rate";

/** Thresholds in base units: lag in seconds, failure rate as a fraction 0..1, counts as-is. */
export type CheckThresholds = Partial<Record<MetricName, Threshold>>;

function parseValue(text: string, kind: ThresholdKind, flag: string): number {
  const bad = (why: string) => new InvalidInputError(`Invalid ${flag} "${shown(text)}": ${why}`);
  if (kind === "duration") return parseDuration(text, `${flag} threshold`, "age") / 1000;
  if (kind === "count") {
    if (!/^\d+$/.test(text)) throw bad("expected a whole number");
    return Number(text);
  }
  const percent = text.endsWith("%");
  const num = percent ? text.slice(0, -1) : text;
  if (!/^\d+(\.\d+)?$/.test(num)) throw bad("expected a rate such as 5% or 0.05");
  const value = percent ? Number(num) / 100 : Number(num);
  if (value > 1) throw bad("a rate cannot exceed 100% (write 5% or 0.05)");
  return value;
}

const EXAMPLES: Record<ThresholdKind, string> = {
  duration: "5m:15m",
  count: "10:50",
  rate: "5%:20%",
};

/**
 * Parses `WARN:CRIT` (e.g. `5m:15m`, `10:50`, `5%:20%`). One value alone is the CRITICAL
 * threshold; `WARN:` or `:CRIT` leave the other level unset. `flag` names it in messages.
 */
export function parseThreshold(text: string, kind: ThresholdKind, flag: string): Threshold {
  const parts = text.split(":");
  if (parts.length > 2 || parts.every((p) => p.trim() === "")) {
    throw new InvalidInputError(
      `Invalid ${flag} "${shown(text)}": expected WARN:CRIT, e.g. ${EXAMPLES[kind]}`,
    );
  }
  const [w, c] = parts.length === 1 ? ["", parts[0]!] : [parts[0]!, parts[1]!];
  const warn = w.trim() === "" ? null : parseValue(w.trim(), kind, flag);
  const crit = c.trim() === "" ? null : parseValue(c.trim(), kind, flag);
  if (warn !== null && crit !== null && warn > crit) {
    throw new InvalidInputError(
      `Invalid ${flag} "${shown(text)}": the warning level must not exceed the critical level`,
    );
  }
  return { warn, crit };
}

function threshold(key: string, kind: ThresholdKind, what: string) {
  return parsed(z.string(), (text) => parseThreshold(text, kind, key), { type: "string" })
    .optional()
    .meta({ description: `${what}: WARN:CRIT, e.g. ${EXAMPLES[kind]}` });
}

/** The check's options by their query names; the CLI's flags map to them. */
export const CheckOptionsObject = z.strictObject({
  max_lag: threshold("max_lag", "duration", "Age of the oldest claimable task"),
  max_stuck: threshold("max_stuck", "count", "Running tasks with an expired lease"),
  max_failure_rate: threshold(
    "max_failure_rate",
    "rate",
    "failed / (completed + failed) in the last hour",
  ),
  max_queued: threshold("max_queued", "count", "Tasks in status queued"),
  long_running: longRunning()
    .meta({ description: "A running task without a lease is stuck once locked this long" }),
});

/** What the check is asked: thresholds, and when a running task without a lease is stuck. */
export interface CheckOptions {
  /** Warning and critical levels per metric; a metric without one is not judged. */
  thresholds: CheckThresholds;
  /** A running task without a lease is stuck once locked this long, milliseconds. */
  longRunningMs: number;
}

/**
 * The type of {@link CheckOptionsObject}.
 *
 * @internal A zod type, another package's (denoland/deno#27364).
 */
export type CheckOptionsObjectType = typeof CheckOptionsObject;

/** {@link CheckOptionsObject} producing the library's {@link CheckOptions}. */
export const CheckOptionsSchema: Transformed<CheckOptionsObjectType, CheckOptions> =
  CheckOptionsObject.transform((o): CheckOptions => {
    const thresholds: CheckThresholds = {};
    if (o.max_lag) thresholds.lag = o.max_lag;
    if (o.max_stuck) thresholds.stuck = o.max_stuck;
    if (o.max_failure_rate) thresholds.failure_rate = o.max_failure_rate;
    if (o.max_queued) thresholds.queued = o.max_queued;
    return { thresholds, longRunningMs: o.long_running };
  });
