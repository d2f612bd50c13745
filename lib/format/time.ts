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

/**
 * How long ago, in its largest unit, for reading at a glance: `just now`, `42s ago`,
 * `4m ago`, `3h ago`, `2d ago`, `in 5m` for the future.
 */
export function formatAge(date: Date, now: Date): string {
  const ms = now.getTime() - date.getTime();
  const s = Math.floor(Math.abs(ms) / 1000);
  if (s < 1) return "just now";
  const unit = s < 60
    ? `${s}s`
    : s < 3600
    ? `${Math.floor(s / 60)}m`
    : s < 86_400
    ? `${Math.floor(s / 3600)}h`
    : s < 365 * 86_400
    ? `${Math.floor(s / 86_400)}d`
    : `${Math.floor(s / (365 * 86_400))}y`;
  return ms >= 0 ? `${unit} ago` : `in ${unit}`;
}
