import { type DurationUse, parseDuration } from "../lib/duration.ts";
import { InvalidInputError, OutOfRangeError } from "../lib/errors.ts";

/** Parses a whole-number flag value strictly ("10", not "10abc" or "1e3"). */
export function parseIntFlag(value: string, flag: string, min: number, max: number): number {
  if (!/^\d+$/.test(value.trim())) {
    throw new InvalidInputError(`Invalid ${flag} "${value}": expected a whole number`);
  }
  const n = Number(value);
  if (n < min || n > max) {
    throw new OutOfRangeError(
      `Invalid ${flag} "${value}": expected a number from ${min} to ${max}`,
    );
  }
  return n;
}

/**
 * Parses a duration flag value (`30s`, `10m`) into milliseconds. A `timer` (the default) is at
 * most about 24.8 days, an `age` at most 100 years (see lib/duration.ts).
 */
export function parseDurationFlag(value: string, flag: string, use?: DurationUse): number {
  return parseDuration(value, flag, use);
}

/** Collects a repeatable flag into an array. */
export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}
