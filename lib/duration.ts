import { InvalidInputError, OutOfRangeError } from "./errors.ts";

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
 * What a duration is for decides how long it may be:
 * - `timer`: something waits that long (a timeout, a poll interval, a lease, a TTL).
 *   setTimeout and PostgreSQL's statement_timeout hold a signed 32-bit count of milliseconds;
 *   past it a timer fires at once (a busy loop, every task timing out) or never.
 * - `age`: a distance from now in SQL (`--older-than`, `--run-after`, `--long-running`), where
 *   now ± it must stay a timestamp PostgreSQL and JavaScript both hold.
 */
export type DurationUse = "timer" | "age";

/** The longest timer: 2^31-1 ms, about 24.8 days. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** The longest age: 100 years (36500d). */
export const MAX_AGE_MS = 36_500 * UNITS.d!;

const LIMITS: Record<DurationUse, { ms: number; text: string }> = {
  timer: { ms: MAX_TIMER_MS, text: "2147483647ms, about 24.8 days (the longest a timer can wait)" },
  age: { ms: MAX_AGE_MS, text: "36500d (100 years)" },
};

/**
 * Parses a duration such as `30s`, `5m`, `1h30m`, `500ms` or `7d` into milliseconds.
 * A bare `0` is accepted; any other number needs a unit, because "10" is ambiguous.
 * `what` names the flag or field in the message. Every duration flag and HTTP parameter
 * goes through here, so the limit for its `use` holds everywhere: a longer one is an
 * {@link OutOfRangeError} that states the limit.
 */
export function parseDuration(
  text: string,
  what = "duration",
  use: DurationUse = "timer",
): number {
  const input = text.trim();
  if (input === "0") return 0;
  let total = 0;
  PART.lastIndex = 0;
  let matched = 0;
  const shown = text.length > 40 ? `${text.slice(0, 40)}…` : text;
  while (PART.lastIndex < input.length) {
    const start = PART.lastIndex;
    const m = PART.exec(input);
    if (!m || m.index !== start) {
      throw new InvalidInputError(
        `Invalid ${what} "${shown}": expected a number with a unit, e.g. 30s, 5m, 2h, 1d`,
      );
    }
    total += Number(m[1]) * UNITS[m[2]!]!;
    matched++;
  }
  if (matched === 0) {
    throw new InvalidInputError(
      `Invalid ${what} "${shown}": expected a number with a unit, e.g. 30s, 5m, 2h, 1d`,
    );
  }
  const limit = LIMITS[use];
  if (!(total <= limit.ms)) {
    throw new OutOfRangeError(`Invalid ${what} "${shown}": at most ${limit.text}`);
  }
  return Math.round(total);
}

/**
 * Resolves after `ms`. If `signal` aborts first, the timer is cleared and the promise rejects
 * with the signal's reason (as `@std/async`'s `delay` does), so a wait never outlives what
 * it waits for.
 */
export function delay(ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) return Promise.reject(signal.reason);
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
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
