import { InvalidInputError } from "./errors.ts";

const UNITS: Record<string, number> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 604_800_000,
};

const PART = /(\d+(?:\.\d+)?)(ms|s|m|h|d|w)/y;

/**
 * Parses a duration such as `30s`, `5m`, `1h30m`, `500ms` or `7d` into milliseconds.
 * A bare `0` is accepted; any other number needs a unit, because "10" is ambiguous.
 */
export function parseDuration(text: string, what = "duration"): number {
  const input = text.trim();
  if (input === "0") return 0;
  let total = 0;
  PART.lastIndex = 0;
  let matched = 0;
  while (PART.lastIndex < input.length) {
    const start = PART.lastIndex;
    const m = PART.exec(input);
    if (!m || m.index !== start) {
      throw new InvalidInputError(
        `Invalid ${what} "${text}": expected a number with a unit, e.g. 30s, 5m, 2h, 1d`,
      );
    }
    total += Number(m[1]) * UNITS[m[2]!]!;
    matched++;
  }
  if (matched === 0) {
    throw new InvalidInputError(
      `Invalid ${what} "${text}": expected a number with a unit, e.g. 30s, 5m, 2h, 1d`,
    );
  }
  return Math.round(total);
}

/** Formats milliseconds compactly for humans: `850ms`, `42s`, `4m 12s`, `3h 5m`, `2d 4h`. */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms)) return "n/a";
  const sign = ms < 0 ? "-" : "";
  const abs = Math.abs(ms);
  if (abs < 1000) return `${sign}${Math.round(abs)}ms`;
  const s = Math.floor(abs / 1000);
  if (s < 60) return `${sign}${s}s`;
  if (s < 3600) return `${sign}${Math.floor(s / 60)}m ${s % 60}s`;
  if (s < 86_400) return `${sign}${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
  return `${sign}${Math.floor(s / 86_400)}d ${Math.floor((s % 86_400) / 3600)}h`;
}

/** A compact duration for perfdata and thresholds: whole seconds with an `s` suffix. */
export function formatSeconds(ms: number): string {
  return `${Math.round(ms / 1000)}s`;
}
