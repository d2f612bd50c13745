/**
 * The opaque `next_cursor` of a page of tasks: where the page ended in its sort order. A client
 * passes it back as `--after` / `after`; what it decodes to is checked like any other input.
 */
import { InvalidInputError } from "../errors.ts";

/** The sort orders of a task list: newest first by updated_at or by created_at. */
export const LIST_SORTS = ["updated", "created"] as const;

/** How a list is sorted. */
export type ListSort = typeof LIST_SORTS[number];

/** Where a page ended: its sort, the last row's sort key and id. */
export interface Cursor {
  sort: ListSort;
  /** The sort key with microseconds, as PostgreSQL printed it (JS Dates keep only ms). */
  ts: string;
  id: string;
}

/** @internal The opaque `next_cursor` for a page ending at `c`. */
export function encodeCursor(c: Cursor): string {
  const json = JSON.stringify([c.sort === "created" ? "c" : "u", c.ts, c.id]);
  return btoa(json).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

/** Reads a `next_cursor` made for a list sorted by `sort`; anything else is a usage error. */
export function decodeCursor(text: string, sort: ListSort): Cursor {
  const bad = () =>
    new InvalidInputError(
      `Invalid cursor "${text.slice(0, 40)}": pass the next_cursor of a previous page`,
    );
  let parsed: unknown;
  try {
    parsed = JSON.parse(atob(text.replaceAll("-", "+").replaceAll("_", "/")));
  } catch {
    throw bad();
  }
  if (
    !Array.isArray(parsed) || parsed.length !== 3 || (parsed[0] !== "u" && parsed[0] !== "c") ||
    typeof parsed[1] !== "string" || !/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/.test(parsed[1]) ||
    typeof parsed[2] !== "string" ||
    !/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(parsed[2])
  ) throw bad();
  const cursorSort = parsed[0] === "c" ? "created" : "updated";
  if (cursorSort !== sort) {
    throw new InvalidInputError(
      `Cursor was made for --sort ${cursorSort}, not --sort ${sort}`,
    );
  }
  return { sort, ts: parsed[1], id: parsed[2] };
}
