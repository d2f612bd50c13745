/**
 * The fingerprint of an error: its first line with the parts that vary between occurrences of
 * one cause (ids, numbers, times, addresses, paths, quoted values) replaced by placeholders, so
 * that "connection refused to 10.0.0.5:5432" and "… to 10.0.0.17:5432" are one failure group.
 *
 * The rules are written once, as regular expressions that mean the same in JavaScript and in
 * PostgreSQL's ARE dialect: no `\b` (a backspace there; lookbehind instead), and no `\w`, `\d`
 * or `\s`, whose sets of characters differ between the two beyond ASCII (explicit ASCII
 * classes instead: `é1` is a letter and a number in both). The
 * database applies them with `regexp_replace` — so grouping happens where the rows are — and
 * {@link fingerprintError} applies the same list in TypeScript; a test holds the two equal.
 */
import { createHash } from "node:crypto";
import type postgres from "postgres";
import type { Db } from "../db.ts";

/** A regular expression, the same in JavaScript and PostgreSQL. */
export interface Pattern {
  /** The expression (no `\\b`; lookbehind and lookahead are fine). */
  pattern: string;
  /** Case-insensitive. */
  ignoreCase?: boolean;
}

/** One normalisation step: every match of `pattern` becomes `replacement`. */
export interface FingerprintRule extends Pattern {
  /** What the rule replaces, for the docs. */
  name: string;
  /** What each match becomes (no `$` or `\\` escapes). */
  replacement: string;
  /**
   * Apply the rule only when the error's first line (as it was, before any rule) matches
   * this: a match test costs a fraction of a replacement, so a rare rule is skipped cheaply.
   */
  when?: Pattern;
  /** When `when` does not hold, this replacement runs instead (a cheaper variant). */
  otherwise?: Pattern & { replacement: string };
}

const NUMBER = String.raw`(?<![A-Za-z0-9_.])[0-9]+(\.[0-9]+)?`;

/**
 * The rules, in order. Digits glued to letters (`v1`, `utf8`, `s3`) and HTTP status codes
 * (`HTTP 503`, `status=429`) are kept: they tell causes apart.
 */
export const FINGERPRINT_RULES: readonly FingerprintRule[] = [
  {
    name: "whitespace",
    pattern: String.raw`[ \t\r\f\v]+`,
    replacement: " ",
    when: { pattern: String.raw`[ \t\r\f\v]{2}|[\t\r\f\v]` },
  },
  // The dispatcher's wrapper of a final failure: a retry and a failure of one cause are one group.
  {
    name: "max attempts prefix",
    pattern: String.raw`^Max attempts \([0-9]+\) exceeded: `,
    replacement: "",
    when: { pattern: String.raw`^Max attempts \(` },
  },
  {
    name: "timestamp",
    pattern: String
      .raw`[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?(Z|[+-][0-9]{2}(:?[0-9]{2})?)?`,
    replacement: "<ts>",
  },
  {
    name: "uuid",
    pattern: "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
    replacement: "<uuid>",
    ignoreCase: true,
  },
  {
    name: "ip address",
    pattern: String.raw`(?<![A-Za-z0-9_.])[0-9]{1,3}(\.[0-9]{1,3}){3}(:[0-9]+)?(?![A-Za-z0-9_.])`,
    replacement: "<ip>",
  },
  {
    name: "absolute path",
    pattern: String.raw`(?<![A-Za-z0-9_/])(/[A-Za-z0-9_.~%@+-]+){2,}/?`,
    replacement: "<path>",
  },
  {
    name: "hex id",
    pattern: String
      .raw`(?<![A-Za-z0-9_])(0x[0-9a-f]+|(?=[0-9a-f]*[0-9])(?=[0-9a-f]*[a-f])[0-9a-f]{8,})(?![A-Za-z0-9_])`,
    replacement: "<hex>",
    ignoreCase: true,
  },
  { name: "double-quoted", pattern: `"[^"]*"`, replacement: `"<str>"` },
  { name: "single-quoted", pattern: String.raw`(?<![A-Za-z0-9_])'[^']*'`, replacement: "'<str>'" },
  {
    // Keeps a status code; the lookbehind that does so is costly, so it runs only when needed.
    name: "number",
    pattern: `(?<!(HTTP|status|code)[ =:]{0,2})${NUMBER}`,
    replacement: "<n>",
    ignoreCase: true,
    when: { pattern: String.raw`(HTTP|status|code)[ =:]{0,2}[0-9]`, ignoreCase: true },
    otherwise: { pattern: NUMBER, replacement: "<n>" },
  },
];

/** Longest fingerprint, in characters: a long first line is cut after this. */
export const MAX_FINGERPRINT_LENGTH = 300;

/**
 * Characters of the first line the rules read: a first line longer than this (a payload dumped
 * into the message) is cut before normalising, which bounds the cost of one error.
 */
export const MAX_LINE_LENGTH = 1000;

/** The part of an error text the fingerprint reads: its first line, cut (see above). */
export function firstLine(text: string | null | undefined): string {
  const line = (text ?? "").split("\n")[0]!;
  return line.length <= MAX_LINE_LENGTH ? line : [...line].slice(0, MAX_LINE_LENGTH).join("");
}

/** {@link firstLine} as an SQL expression of a text column. */
export function firstLineExpression(column = "error"): string {
  return `left(split_part(coalesce(${column}, ''), E'\\n', 1), ${MAX_LINE_LENGTH})`;
}

const global = (p: Pattern) => new RegExp(p.pattern, p.ignoreCase ? "gi" : "g");
const compiled = FINGERPRINT_RULES.map((r) => ({
  regex: global(r),
  replacement: r.replacement,
  when: r.when ? new RegExp(r.when.pattern, r.when.ignoreCase ? "i" : "") : undefined,
  otherwise: r.otherwise
    ? { regex: global(r.otherwise), replacement: r.otherwise.replacement }
    : undefined,
}));

/**
 * The fingerprint of an error text, as the database computes it for `seedtask failures`.
 *
 * @example
 * ```ts
 * fingerprintError("connection refused to 10.0.0.5:5432"); // "connection refused to <ip>"
 * ```
 */
export function fingerprintError(text: string | null | undefined): string {
  const line = firstLine(text);
  let s = line;
  for (const { regex, replacement, when, otherwise } of compiled) {
    if (!when || when.test(line)) s = s.replace(regex, replacement);
    else if (otherwise) s = s.replace(otherwise.regex, otherwise.replacement);
  }
  // btrim's spaces only: the whitespace rule has made every other blank a space.
  return [...s.replace(/^ +| +$/g, "")].slice(0, MAX_FINGERPRINT_LENGTH).join("");
}

/**
 * The id of the failure group of (`type`, `fingerprint`): 12 hex digits of an MD5, what
 * `retry --group` and `POST /failures/{id}/retry` take. The same as {@link groupIdSql}.
 */
export function failureGroupId(type: string, fingerprint: string): string {
  return createHash("md5").update(`${type}\x1f${fingerprint}`).digest("hex").slice(0, 12);
}

function literal(text: string): string {
  return `'${text.replaceAll("'", "''")}'`;
}

function replace(expression: string, p: Pattern & { replacement: string }): string {
  return `regexp_replace(${expression}, ${literal(p.pattern)}, ${literal(p.replacement)}, ${
    literal(p.ignoreCase ? "gi" : "g")
  })`;
}

/**
 * The fingerprint SQL expression of a text column (see {@link fingerprintError}): one
 * `regexp_replace` per rule, nested, each guarded rule a CASE that tests the first line.
 */
export function fingerprintExpression(column = "error"): string {
  const line = firstLineExpression(column);
  let e = line;
  for (const r of FINGERPRINT_RULES) {
    if (!r.when) {
      e = replace(e, r);
      continue;
    }
    const test = `${line} ${r.when.ignoreCase ? "~*" : "~"} ${literal(r.when.pattern)}`;
    e = `case when ${test} then ${replace(e, r)} else ${
      r.otherwise ? replace(e, r.otherwise) : e
    } end`;
  }
  return `left(btrim(${e}), ${MAX_FINGERPRINT_LENGTH})`;
}

/** {@link fingerprintExpression} as a query fragment. */
export function fingerprintSql(db: Db, column = "error"): postgres.PendingQuery<postgres.Row[]> {
  return db.sql.unsafe(fingerprintExpression(column));
}

/** The group id SQL expression of a task row (see {@link failureGroupId}). */
export function groupIdExpression(
  typeColumn = "type",
  fingerprint: string = fingerprintExpression(),
): string {
  return `left(md5(${typeColumn} || chr(31) || ${fingerprint}), 12)`;
}

/** {@link groupIdExpression} as a query fragment. */
export function groupIdSql(db: Db): postgres.PendingQuery<postgres.Row[]> {
  return db.sql.unsafe(groupIdExpression());
}

/** A group id as given: 12 hex digits. */
export const GROUP_ID_PATTERN = /^[0-9a-f]{12}$/;
