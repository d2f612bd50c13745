/**
 * The one text-table renderer of the human formatters (`list`, `stats`, …): cli-table3 without
 * borders, columns two spaces apart, so the output stays plain text that reads the same in a
 * terminal, a pipe or a log.
 */
import Table from "cli-table3";

/** Borderless table chars: plain text that stays readable when piped or logged. */
const PLAIN_CHARS = {
  top: "",
  "top-mid": "",
  "top-left": "",
  "top-right": "",
  bottom: "",
  "bottom-mid": "",
  "bottom-left": "",
  "bottom-right": "",
  left: "",
  "left-mid": "",
  mid: "",
  "mid-mid": "",
  right: "",
  "right-mid": "",
  middle: "  ",
};

/** How {@link renderTable} lays out its columns. */
export interface TableLayout {
  /** A header line. */
  head?: string[];
  /** Each column's alignment (default left). */
  align?: Array<"left" | "right">;
  /** Fixed widths, in terminal columns; a longer cell is cut with `…` (null: as wide as needed). */
  widths?: Array<number | null>;
  /** Text before every line. */
  indent?: string;
}

/** The lines of a plain table, trailing spaces trimmed. */
export function renderTable(rows: readonly string[][], layout: TableLayout = {}): string[] {
  if (rows.length === 0 && !layout.head) return [];
  const table = new Table({
    head: layout.head ?? [],
    chars: PLAIN_CHARS,
    style: { head: [], border: [], "padding-left": 0, "padding-right": 0, compact: true },
    colAligns: layout.align ?? [],
    colWidths: layout.widths ?? [],
    wordWrap: false,
  });
  for (const r of rows) table.push([...r]);
  const indent = layout.indent ?? "";
  return table.toString().split("\n")
    .map((l) => (indent + l).trimEnd())
    .filter((l) => l !== "");
}

/**
 * The columns a string takes in a terminal: an emoji or East Asian wide character takes two,
 * a combining mark or variation selector none (what cli-table3 measures, closely enough for
 * layout decisions).
 */
export function displayWidth(text: string): number {
  let width = 0;
  for (const ch of text) {
    if (/[\p{Mn}\p{Me}\u200d\ufe0f]/u.test(ch)) continue;
    width +=
      /[\p{Extended_Pictographic}\u1100-\u115f\u2e80-\ua4cf\uac00-\ud7a3\uf900-\ufaff\uff00-\uff60\uffe0-\uffe6]/u
          .test(ch)
        ? 2
        : 1;
  }
  return width;
}

/** `text` on one line (whitespace runs as one space), cut to `max` columns with `…`. */
export function oneLine(text: string, max = Number.POSITIVE_INFINITY): string {
  const flat = text.replace(/\s+/g, " ").trim();
  if (displayWidth(flat) <= max) return flat;
  let out = "";
  let width = 0;
  for (const ch of flat) {
    const w = displayWidth(ch);
    if (width + w > max - 1) break;
    out += ch;
    width += w;
  }
  return `${out}…`;
}
