import type { Command } from "commander";
import { InvalidInputError } from "../lib/errors.ts";
import { csvHeader, formatCsvRows, formatNdjson, formatTaskTable } from "../lib/format/tasks.ts";
import {
  ListFilterObject,
  MAX_LIST_LIMIT,
  pageSize,
  toListFilter,
} from "../lib/input/list_filter.ts";
import { listTasks, streamTasks } from "../lib/queries/list_tasks.ts";
import { type Context, json, useEmoji, withDb } from "./context.ts";
import { collect, fieldHelp, parseFlags } from "./options.ts";

interface ListOptions {
  fullId?: boolean;
  json?: boolean;
  format?: string;
  [filter: string]: unknown;
}

/** The list filter, with `--limit 0`: stream every match. */
const ListFlags = ListFilterObject.extend({ limit: pageSize(0, MAX_LIST_LIMIT) })
  .transform(toListFilter);

const FORMATS = ["table", "json", "ndjson", "csv"] as const;
type Format = typeof FORMATS[number];

function parseFormat(opts: ListOptions): Format {
  if (opts.json && opts.format && opts.format !== "json") {
    throw new InvalidInputError(`--json conflicts with --format ${opts.format}`);
  }
  const format = opts.json ? "json" : (opts.format ?? "table");
  if (!(FORMATS as readonly string[]).includes(format)) {
    throw new InvalidInputError(
      `Invalid format "${format}": expected one of ${FORMATS.join(", ")}`,
    );
  }
  return format as Format;
}

export function registerList(program: Command, ctx: Context): void {
  program
    .command("list")
    .description("List tasks, newest first")
    .option("--status <statuses>", "only these statuses, comma-separated (repeatable)", collect)
    .option("--type <type>", "only this task type")
    .option("--domain <domain>", "only this domain")
    .option("--search <text>", "text in description or error (case-insensitive)")
    .option(
      "--limit <n>",
      fieldHelp(
        ListFilterObject,
        "limit",
        `page size, 1-${MAX_LIST_LIMIT}; 0 streams every match (ndjson/csv only)`,
      ),
    )
    .option("--sort <key>", fieldHelp(ListFilterObject, "sort", "newest first by this time"))
    .option("--after <cursor>", "continue after a previous page (its next_cursor)")
    .option("--full-id", "show full task ids in the table")
    .option(
      "--format <format>",
      `output format (choices: ${FORMATS.map((f) => `"${f}"`).join(", ")}, default: "table")`,
    )
    .option("--json", "same as --format json: {items, next_cursor}")
    .action(async (opts: ListOptions, cmd: Command) => {
      const format = parseFormat(opts);
      const { limit, ...filter } = parseFlags(ListFlags, opts);
      if (limit === 0 && format !== "ndjson" && format !== "csv") {
        throw new InvalidInputError("--limit 0 (everything) needs --format ndjson or csv");
      }
      await withDb(ctx, cmd, async (db) => {
        if (limit === 0) {
          // Streams through a server-side cursor: memory stays flat on any table size.
          if (format === "csv") await ctx.out(csvHeader());
          for await (const batch of streamTasks(db, filter)) {
            await ctx.out(format === "csv" ? formatCsvRows(batch) : formatNdjson(batch));
          }
          return;
        }
        const page = await listTasks(db, { ...filter, limit });
        switch (format) {
          case "json":
            return await json(ctx, page);
          case "ndjson":
            return await ctx.out(formatNdjson(page.items));
          case "csv":
            return await ctx.out(csvHeader() + formatCsvRows(page.items));
          case "table": {
            let text = formatTaskTable(page.items, {
              emoji: useEmoji(ctx, cmd),
              fullId: opts.fullId,
              sort: filter.sort,
            });
            if (page.next_cursor) text += `More: add --after ${page.next_cursor}\n`;
            return await ctx.out(text);
          }
        }
      });
    });
}
