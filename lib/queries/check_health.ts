import type { Db } from "../db.ts";
import { parseDuration } from "../duration.ts";
import { InvalidInputError } from "../errors.ts";
import { getQueueHealth, type HealthOptions, type QueueHealth } from "./queue_health.ts";

/** Monitoring-plugin states, in order of severity. */
export type CheckState = "OK" | "WARNING" | "CRITICAL" | "UNKNOWN";

/** Exit codes of the monitoring-plugin convention. */
export const CHECK_EXIT: Record<CheckState, number> = {
  OK: 0,
  WARNING: 1,
  CRITICAL: 2,
  UNKNOWN: 3,
};

/** Alert when the value is above `warn` (WARNING) or above `crit` (CRITICAL). */
export interface Threshold {
  warn: number | null;
  crit: number | null;
}

export type MetricName = "lag" | "stuck" | "failure_rate" | "queued";
export type ThresholdKind = "duration" | "count" | "rate";

/** Thresholds in base units: lag in seconds, failure rate as a fraction 0..1, counts as-is. */
export type CheckThresholds = Partial<Record<MetricName, Threshold>>;

function parseValue(text: string, kind: ThresholdKind, flag: string): number {
  const bad = (why: string) => new InvalidInputError(`Invalid ${flag} "${text}": ${why}`);
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

/**
 * Parses `WARN:CRIT` (e.g. `5m:15m`, `10:50`, `5%:20%`). One value alone is the CRITICAL
 * threshold; `WARN:` or `:CRIT` leave the other level unset.
 */
export function parseThreshold(text: string, kind: ThresholdKind, flag: string): Threshold {
  const parts = text.split(":");
  if (parts.length > 2 || parts.every((p) => p.trim() === "")) {
    throw new InvalidInputError(
      `Invalid ${flag} "${text}": expected WARN:CRIT, e.g. ${
        { duration: "5m:15m", count: "10:50", rate: "5%:20%" }[kind]
      }`,
    );
  }
  const [w, c] = parts.length === 1 ? ["", parts[0]!] : [parts[0]!, parts[1]!];
  const warn = w.trim() === "" ? null : parseValue(w.trim(), kind, flag);
  const crit = c.trim() === "" ? null : parseValue(c.trim(), kind, flag);
  if (warn !== null && crit !== null && warn > crit) {
    throw new InvalidInputError(
      `Invalid ${flag} "${text}": the warning level must not exceed the critical level`,
    );
  }
  return { warn, crit };
}

export interface CheckMetric {
  name: MetricName;
  value: number;
  warn: number | null;
  crit: number | null;
  state: CheckState;
}

export interface CheckResult {
  state: CheckState;
  exit_code: number;
  metrics: CheckMetric[];
  health: QueueHealth;
}

function evaluate(value: number, t: Threshold | undefined): CheckState {
  if (t && t.crit !== null && value > t.crit) return "CRITICAL";
  if (t && t.warn !== null && value > t.warn) return "WARNING";
  return "OK";
}

const SEVERITY: CheckState[] = ["OK", "WARNING", "CRITICAL", "UNKNOWN"];

/**
 * Grades queue health against the thresholds (pure). The failure rate is the last hour's (a
 * recent window is what an alert should react to); no finished task counts as 0.
 */
export function gradeHealth(health: QueueHealth, thresholds: CheckThresholds): CheckResult {
  const values: Record<MetricName, number> = {
    lag: Math.round(health.lag_seconds ?? 0),
    stuck: health.stuck,
    failure_rate: health.failure_rate_last_hour ?? 0,
    queued: health.queued ?? 0,
  };
  const metrics = (Object.keys(values) as MetricName[]).map((name) => ({
    name,
    value: values[name],
    warn: thresholds[name]?.warn ?? null,
    crit: thresholds[name]?.crit ?? null,
    state: evaluate(values[name], thresholds[name]),
  }));
  const state = metrics.reduce<CheckState>(
    (worst, m) => SEVERITY.indexOf(m.state) > SEVERITY.indexOf(worst) ? m.state : worst,
    "OK",
  );
  return { state, exit_code: CHECK_EXIT[state], metrics, health };
}

/** Reads queue health and grades it (`seedtask check`). */
export async function checkHealth(
  db: Db,
  thresholds: CheckThresholds,
  options: HealthOptions = {},
): Promise<CheckResult> {
  return gradeHealth(await getQueueHealth(db, options), thresholds);
}
