import { InvalidInputError } from "../errors.ts";

/** A parsed task id argument: either a full uuid or a hex prefix of one. */
export type TaskIdArg =
  | { kind: "full"; id: string }
  | { kind: "prefix"; prefix: string; low: string; high: string };

function toUuid(hex32: string): string {
  return `${hex32.slice(0, 8)}-${hex32.slice(8, 12)}-${hex32.slice(12, 16)}-${
    hex32.slice(16, 20)
  }-${hex32.slice(20)}`;
}

/**
 * Parses a task id or unique-prefix argument. Hyphens are optional; case is ignored.
 * A prefix becomes the inclusive uuid range [prefix000…, prefixfff…], which the primary key
 * btree answers with a range scan (uuid ordering is byte order, the same as hex order).
 */
export function parseTaskIdArg(input: string): TaskIdArg {
  const raw = input.trim().toLowerCase();
  const hex = raw.replaceAll("-", "");
  if (hex === "" || !/^[0-9a-f]+$/.test(hex) || hex.length > 32) {
    throw new InvalidInputError(
      `Invalid task id "${input}": expected a uuid or a prefix of one (hex digits)`,
    );
  }
  if (hex.length === 32) return { kind: "full", id: toUuid(hex) };
  return {
    kind: "prefix",
    prefix: raw,
    low: toUuid(hex.padEnd(32, "0")),
    high: toUuid(hex.padEnd(32, "f")),
  };
}

/** The 8-character short id shown in tables. */
export function shortId(id: string): string {
  return id.slice(0, 8);
}
