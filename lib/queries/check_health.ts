import type { Db } from "../db.ts";
import type { CheckThresholds, MetricName, Threshold } from "../input/check_thresholds.ts";
import { getQueueHealth, type HealthOptions, type QueueHealth } from "./queue_health.ts";

export {
  type CheckThresholds,
  type MetricName,
  parseThreshold,
  type Threshold,
  type ThresholdKind,
} from "../input/check_thresholds.ts";

/** Monitoring-plugin states, in order of severity. */
export type CheckState = "OK" | "WARNING" | "CRITICAL" | "UNKNOWN";

/** Exit codes of the monitoring-plugin convention. */
export const CHECK_EXIT: Record<CheckState, number> = {
  OK: 0,
  WARNING: 1,
  CRITICAL: 2,
  UNKNOWN: 3,
};

/** One metric of a check: its value, thresholds and state. */
export interface CheckMetric {
  /** Which metric. */
  name: MetricName;
  /** Its value: seconds for lag, a count for stuck and queued, a fraction for failure_rate. */
  value: number;
  /** The WARNING threshold, if any. */
  warn: number | null;
  /** The CRITICAL threshold, if any. */
  crit: number | null;
  /** OK, WARNING or CRITICAL. */
  state: CheckState;
}

/** The outcome of {@link checkHealth}: `check --json` and `GET /check`. */
export interface CheckResult {
  /** The worst state of any metric. */
  state: CheckState;
  /** The Nagios exit code of that state: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN. */
  exit_code: number;
  /** Each judged metric with its value, thresholds and state. */
  metrics: CheckMetric[];
  /** The queue health the metrics were read from. */
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

/**
 * Reads queue health and grades it: `seedtask check` and `GET /check` both answer with this.
 *
 * @example
 * const result = await checkHealth(db, { lag: { warn: 300, crit: 900 } });
 * if (result.state !== "OK") console.log(result.metrics);
 */
export async function checkHealth(
  db: Db,
  thresholds: CheckThresholds,
  options: HealthOptions = {},
): Promise<CheckResult> {
  return gradeHealth(await getQueueHealth(db, options), thresholds);
}
