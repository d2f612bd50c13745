import type { Command } from "commander";
import { InvalidInputError } from "../lib/errors.ts";
import { csvHeader, formatCsvRows, formatNdjson, formatTaskTable } from "../lib/format/tasks.ts";
import {
  ListFilterObject,
  MAX_LIST_LIMIT,
  pageSize,
  toListFilter,
} from "../lib/input/list_filter.ts";
import { getTableInfo } from "../lib/db.ts";
import { listTasks, streamTasks } from "../lib/queries/list_tasks.ts";
import type { Task } from "../lib/table/contract.ts";
import { listTasksWithTotal } from "../lib/queries/list_total.ts";
import { type Context, json, outputWidth, useEmoji, withDb } from "./context.ts";
import { collect, fieldHelp, parseFlags } from "./options.ts";

interface ListOptions {
  fullId?: boolean;
  wide?: boolean;
  exact?: boolean;
  limit?: string;
  json?: boolean;
  format?: string;
  [filter: string]: unknown;
}

/** The list filter, with `--limit 0`: every match (exports only). */
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
    .description("List tasks, newest first, with how many match")
    .option("--status <statuses>", "only these statuses, comma-separated (repeatable)", collect)
    .option("--type <types>", "only these task types, comma-separated (repeatable)", collect)
    .option("--domain <domains>", "only these domains, comma-separated (repeatable)", collect)
    .option(
      "--param <key=value>",
      "only tasks whose params hold key=value (JSON containment; repeatable)",
      collect,
    )
    .option("--search <text>", "text in description or error (case-insensitive)")
    .option(
      "--limit <n>",
      fieldHelp(
        ListFilterObject,
        "limit",
        `page size, 1-${MAX_LIST_LIMIT}; csv and ndjson: every match`,
      ),
    )
    .option("--sort <key>", fieldHelp(ListFilterObject, "sort", "newest first by this time"))
    .option("--after <cursor>", "continue after a previous page (its next_cursor)")
    .option("--exact", "count every match for the total (slow on a large table)")
    .option("--wide", "every column at full width, even wider than the terminal")
    .option("--full-id", "show full task ids in the table")
    .option(
      "--format <format>",
      `output format (choices: ${FORMATS.map((f) => `"${f}"`).join(", ")}, default: "table")`,
    )
    .option("--json", "same as --format json: {items, next_cursor, total, …}")
    .action(async (opts: ListOptions, cmd: Command) => {
      const format = parseFormat(opts);
      const exports = format === "ndjson" || format === "csv";
      const { limit, ...filter } = parseFlags(ListFlags, opts);
      if (limit === 0 && !exports) {
        throw new InvalidInputError("--limit 0 (everything) needs --format ndjson or csv");
      }
      await withDb(ctx, cmd, async (db) => {
        if (exports) {
          // The table's columns in its order, as every ndjson line has them.
          const columns = [...(await getTableInfo(db)).columns.keys()];
          const write = async (tasks: readonly Task[], first: boolean) =>
            await ctx.out(
              format === "csv"
                ? (first ? csvHeader(columns) : "") + formatCsvRows(tasks, columns)
                : formatNdjson(tasks),
            );
          if (limit === 0 || opts.limit === undefined) {
            // An export is every match unless --limit says otherwise, streamed through a
            // server-side cursor: memory stays flat on any table size.
            let first = true;
            for await (const batch of streamTasks(db, { ...filter, limit: 1 })) {
              await write(batch, first);
              first = false;
            }
            if (first) await write([], true);
            return;
          }
          const page = await listTasks(db, { ...filter, limit });
          await write(page.items, true);
          if (page.next_cursor) {
            // Data on stdout stays pure; the person exporting learns the file is not all.
            await ctx.err(
              `note: wrote the first ${page.items.length} matches (--limit ${limit}); more ` +
                `match: drop --limit for all of them, or add --after ${page.next_cursor}\n`,
            );
          }
          return;
        }
        const { page, total } = await listTasksWithTotal(db, { ...filter, limit }, {
          exact: opts.exact,
        });
        if (format === "json") {
          return await json(ctx, {
            ...page,
            total: total.total,
            total_exact: total.exact,
            total_note: total.note,
          });
        }
        return await ctx.out(formatTaskTable(page.items, {
          emoji: useEmoji(ctx, cmd),
          fullId: opts.fullId,
          sort: filter.sort,
          width: outputWidth(ctx),
          wide: opts.wide,
          total,
          nextCursor: page.next_cursor,
        }));
      });
    });
}
