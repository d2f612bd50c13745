import type { CheckMetric, CheckResult } from "../queries/check_health.ts";
import { oneLine } from "../errors.ts";
import { formatPausedClause } from "./pauses.ts";

function show(m: CheckMetric): string {
  switch (m.name) {
    case "lag":
      return `lag ${m.value}s`;
    case "failure_rate":
      return `failure rate ${(m.value * 100).toFixed(1)}%`;
    default:
      return `${m.name} ${m.value}`;
  }
}

function perf(m: CheckMetric): string {
  const t = (v: number | null) => v === null ? "" : String(v);
  if (m.name === "lag") return `lag=${m.value}s;${t(m.warn)};${t(m.crit)};0;`;
  if (m.name === "failure_rate") {
    const p = (v: number | null) => v === null ? "" : String(Math.round(v * 10000) / 100);
    return `failure_rate=${Math.round(m.value * 10000) / 100}%;${p(m.warn)};${p(m.crit)};0;100`;
  }
  return `${m.name}=${m.value};${t(m.warn)};${t(m.crit)};0;`;
}

/**
 * One monitoring-plugin line: `SEEDTASK OK - lag 12s, stuck 0, ... | lag=12s;300;900;0; ...`.
 * Metrics over a threshold are listed first so the alert text leads with the cause.
 */
export function formatCheckLine(result: CheckResult, now: Date = new Date()): string {
  const order = (m: CheckMetric) => m.state === "CRITICAL" ? 0 : m.state === "WARNING" ? 1 : 2;
  const text = [...result.metrics].sort((a, b) => order(a) - order(b)).map((m) =>
    m.state === "OK" ? show(m) : `${show(m)} (${m.state})`
  );
  // Paused types are named so that a queue that grows on purpose is not taken for an outage
  // (their work is left out of lag and queued: see QueueHealth).
  const paused = formatPausedClause(result.health.paused, now);
  return `SEEDTASK ${result.state} - ${text.join(", ")}${paused ? `; ${paused}` : ""} | ${
    result.metrics.map(perf).join(" ")
  }\n`;
}

/** The line printed when the check itself cannot run (exit 3). */
export function formatCheckUnknown(message: string): string {
  return `SEEDTASK UNKNOWN - ${oneLine(message.replace(/\s+/g, " "))}\n`;
}
