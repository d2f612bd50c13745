import { formatDuration } from "../duration.ts";

/** `2026-11-26 07:47:16 UTC`, or `-` for null. */
export function formatUtc(date: Date | null | undefined): string {
  if (!date) return "-";
  return `${date.toISOString().slice(0, 19).replace("T", " ")} UTC`;
}

/** `4m 12s ago` for the past, `in 5m 0s` for the future. */
export function formatRelative(date: Date, now: Date): string {
  const ms = now.getTime() - date.getTime();
  if (Math.abs(ms) < 1000) return "just now";
  return ms >= 0 ? `${formatDuration(ms)} ago` : `in ${formatDuration(-ms)}`;
}

/** `2026-11-26 07:47:16 UTC (4m 12s ago)`. */
export function formatUtcRelative(date: Date | null | undefined, now: Date): string {
  if (!date) return "-";
  return `${formatUtc(date)} (${formatRelative(date, now)})`;
}
