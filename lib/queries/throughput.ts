/**
 * Throughput history: tasks completed and failed per minute and per hour, counted by the time
 * they finished. A task's finish time is its `updated_at` while its status is completed or
 * failed (the contract has no separate finished_at: every later change of the row would move
 * it out of that status too).
 *
 * A bucket that has closed does not change, so a {@link ThroughputCache} keeps each one once it
 * is counted — and of the open minute, each second — so a refresh counts only the last few
 * seconds. "Closed" waits {@link SETTLE_MS} past the end: a row's updated_at is its
 * transaction's start, so a completion that began just before the end can commit after it.
 */
import type postgres from "postgres";
import { type Db, guard } from "../db.ts";
import { resolveThroughputOptions, type ThroughputOptions } from "../input/history_options.ts";
import { nowFragment } from "./queue_health.ts";

export type { ThroughputOptions };

/**
 * How long after its end a bucket (or a second of the open minute) is still re-counted, in
 * milliseconds: a completion's updated_at is its transaction's start, and the dispatcher's
 * completions are single statements, committed well within this.
 */
export const SETTLE_MS = 5_000;

const MINUTE = 60_000;
const HOUR = 3_600_000;

/** One bucket of the history. */
export interface ThroughputBucket {
  /** Start of the minute or hour (UTC). */
  start: Date;
  /** Tasks that completed in it. */
  completed: number;
  /** Tasks that failed for good in it (a failed attempt that will be retried is not counted). */
  failed: number;
  /** The current minute or hour: still filling. */
  open: boolean;
}

/** What `getThroughput()` returns and `GET /throughput` answers. */
export interface Throughput {
  /** The type asked for; null for all types. */
  type: string | null;
  /** Per minute, oldest first; the last one is the current minute. */
  minutes: ThroughputBucket[];
  /** Per hour, oldest first; the last one is the current hour (empty with hours=0). */
  hours: ThroughputBucket[];
  /** The database's clock when counted. */
  generated_at: Date;
}

/** A bucket's counts. */
export type Counts = readonly [completed: number, failed: number];

/** The closed buckets of one history, by epoch minute and epoch hour: [completed, failed]. */
export interface Series {
  /** Closed minutes by `floor(epoch ms / 60000)`. */
  minutes: Map<number, Counts>;
  /** Closed hours by `floor(epoch ms / 3600000)`. */
  hours: Map<number, Counts>;
  /** Settled seconds of minutes not yet closed, by `floor(epoch ms / 1000)`. */
  slices: Map<number, Counts>;
}

/** At most this many histories (one per table and type asked for) are kept. */
const MAX_SERIES = 64;

/**
 * The closed buckets already counted, per table and type. `serve` owns one for its lifetime;
 * without one, {@link getThroughput} counts every bucket it returns. Memory is bounded: a few
 * hundred numbers per history, at most {@link MAX_SERIES} histories.
 */
export class ThroughputCache {
  readonly #series = new Map<string, Series>();

  /** The history of `key`, created when new; the least recently used is dropped past the cap. */
  series(key: string): Series {
    let s = this.#series.get(key);
    if (s) {
      this.#series.delete(key); // re-inserted last: most recently used
    } else {
      s = { minutes: new Map(), hours: new Map(), slices: new Map() };
      if (this.#series.size >= MAX_SERIES) {
        this.#series.delete(this.#series.keys().next().value!);
      }
    }
    this.#series.set(key, s);
    return s;
  }

  /** Closed buckets held, over every history (tests and metrics). */
  get size(): number {
    let n = 0;
    for (const s of this.#series.values()) n += s.minutes.size + s.hours.size + s.slices.size;
    return n;
  }
}

type Fragment = postgres.PendingQuery<postgres.Row[]>;

/**
 * Tasks completed and failed per minute for the last `minutes` and per hour for the last
 * `hours`, for one type or all. One statement: with a warm `cache` it counts only the seconds
 * not yet settled ({@link SETTLE_MS}), a short range of the `(status, updated_at)` index; the
 * settled seconds, minutes and hours come from the cache. The open hour is the sum of its
 * minutes.
 *
 * @example
 * const cache = new ThroughputCache();
 * const t = await getThroughput(db, { minutes: 60, hours: 48 }, cache);
 * console.log(t.minutes.at(-2)); // the last full minute
 */
export async function getThroughput(
  db: Db,
  options: ThroughputOptions = {},
  cache: ThroughputCache = new ThroughputCache(),
): Promise<Throughput> {
  const plan = planThroughput(db, options, cache);
  const rows = await guard(db, async () => await plan.query);
  return plan.finish(rows);
}

/** A throughput refresh, split so that its statement can run inside another one. */
export interface ThroughputPlan {
  /** The statement (built, not run): rows `g, b, c, f` (see {@link throughputQuery}). */
  query: Fragment;
  /** The answer from the statement's rows; keeps what has settled in the cache. */
  finish(rows: readonly Record<string, unknown>[]): Throughput;
}

/**
 * Plans {@link getThroughput}: what to count given what `cache` holds. `getOverview` runs the
 * statement as part of its own, so a `top` frame is one statement.
 */
export function planThroughput(
  db: Db,
  options: ThroughputOptions = {},
  cache: ThroughputCache = new ThroughputCache(),
): ThroughputPlan {
  const o = resolveThroughputOptions(options);
  const series = cache.series(`${db.table}\u0000${o.type ?? ""}`);
  // The plan uses this process's clock (or the given instant); what may be kept is decided
  // by the database's clock, which the statement returns.
  const planNow = o.now?.getTime() ?? Date.now();
  const curMin = Math.floor(planNow / MINUTE);
  const curHour = Math.floor(planNow / HOUR);
  const wantMin = curMin - o.minutes + 1;
  const wantHour = curHour - o.hours + 1;
  const settled = (end: number, now: number) => end + SETTLE_MS <= now;

  // Minutes to count: the ones asked for, and every minute of an hour that is still open or
  // settling (its total is the sum of its minutes), from the first one not cached.
  let minuteFrom = wantMin;
  if (o.hours > 0) {
    const firstUnsettledHour = settled(curHour * HOUR, planNow) ? curHour : curHour - 1;
    minuteFrom = Math.min(minuteFrom, firstUnsettledHour * 60);
  }
  let countFrom = minuteFrom;
  while (countFrom <= curMin && series.minutes.has(countFrom)) countFrom++;
  // Settled minutes still missing are counted per minute; the rest, per second from the first
  // second not kept — with a warm cache, the last few seconds only.
  const lastSettledMin = Math.floor((planNow - SETTLE_MS) / MINUTE) - 1;
  const minuteTo = Math.min(lastSettledMin, curMin);
  let secondFrom = Math.max(countFrom, minuteTo + 1) * 60;
  while (series.slices.has(secondFrom)) secondFrom++;
  const missingHours: number[] = [];
  for (let h = wantHour; h < curHour && o.hours > 0; h++) {
    if (!series.hours.has(h) && settled((h + 1) * HOUR, planNow)) missingHours.push(h);
  }

  const query = throughputQuery(db, o, {
    minutes: countFrom <= minuteTo ? [countFrom, minuteTo] : null,
    secondFrom,
    hours: missingHours,
  });
  const finish = (rows: readonly Record<string, unknown>[]): Throughput => {
    const counted = {
      m: new Map<number, Counts>(),
      s: new Map<number, Counts>(),
      h: new Map<number, Counts>(),
    };
    let dbNow = planNow;
    for (const r of rows) {
      if (r.g === "now") dbNow = Number(r.b);
      else counted[r.g as "m" | "s" | "h"].set(Number(r.b), [r.c as number, r.f as number]);
    }

    const zero: Counts = [0, 0];
    for (let m = countFrom; m <= minuteTo; m++) {
      if (settled((m + 1) * MINUTE, dbNow)) series.minutes.set(m, counted.m.get(m) ?? zero);
    }
    for (let sec = secondFrom; sec <= Math.floor(planNow / 1000); sec++) {
      if (!settled((sec + 1) * 1000, dbNow)) break;
      series.slices.set(sec, counted.s.get(sec) ?? zero);
    }
    const slicesOf = (m: number): Counts => {
      let c = 0;
      let f = 0;
      for (let sec = m * 60; sec < (m + 1) * 60; sec++) {
        const x = series.slices.get(sec) ?? counted.s.get(sec);
        if (x) {
          c += x[0];
          f += x[1];
        }
      }
      return [c, f];
    };
    // A minute whose seconds have all settled becomes one kept minute.
    for (let m = minuteTo + 1; m <= curMin; m++) {
      if (
        !series.minutes.has(m) && settled((m + 1) * MINUTE, dbNow) && series.slices.has(m * 60 + 59)
      ) {
        series.minutes.set(m, slicesOf(m));
        for (let sec = m * 60; sec < (m + 1) * 60; sec++) series.slices.delete(sec);
      }
    }
    for (const h of missingHours) {
      if (settled((h + 1) * HOUR, dbNow)) series.hours.set(h, counted.h.get(h) ?? zero);
    }
    const minute = (m: number): Counts =>
      series.minutes.get(m) ?? counted.m.get(m) ?? (m > minuteTo ? slicesOf(m) : zero);

    const minutes: ThroughputBucket[] = [];
    for (let m = wantMin; m <= curMin; m++) {
      const [completed, failed] = minute(m);
      minutes.push({ start: new Date(m * MINUTE), completed, failed, open: m === curMin });
    }
    const hours: ThroughputBucket[] = [];
    for (let h = wantHour; h <= curHour && o.hours > 0; h++) {
      let c = series.hours.get(h) ?? counted.h.get(h);
      if (!c && h * 60 >= minuteFrom) {
        // An hour still open or settling: the sum of its minutes, kept once it has settled.
        let completed = 0;
        let failed = 0;
        for (let m = h * 60; m < (h + 1) * 60 && m <= curMin; m++) {
          completed += minute(m)[0];
          failed += minute(m)[1];
        }
        c = [completed, failed];
        if (settled((h + 1) * HOUR, dbNow)) series.hours.set(h, c);
      }
      const [completed, failed] = c ?? zero;
      hours.push({ start: new Date(h * HOUR), completed, failed, open: h === curHour });
    }

    // Forget what no request can ask for any more.
    for (const m of series.minutes.keys()) if (m < curMin - 240) series.minutes.delete(m);
    for (const h of series.hours.keys()) if (h < curHour - 170) series.hours.delete(h);
    for (const sec of series.slices.keys()) if (sec < (curMin - 2) * 60) series.slices.delete(sec);

    return { type: o.type ?? null, minutes, hours, generated_at: new Date(dbNow) };
  };
  return { query, finish };
}

/**
 * The one statement of a refresh: per-minute counts of the settled minutes not yet kept,
 * per-second counts from `secondFrom` to now (the open minute: with a warm cache, the last few
 * seconds), per-hour counts of `hours` (closed hours not yet kept; none once warm), and the
 * database's clock. Each part is a range of the `(status, updated_at)` index per status;
 * buckets are whole epoch seconds, minutes and hours, so the session's time zone does not
 * matter. Each row's bucket is `date_part` (a double) grouped as a bigint: `extract` returns
 * numeric since PostgreSQL 14, and numeric arithmetic plus a text key per row doubled the cost
 * (48 hours of a 10M-row table: 300 -> 150 ms cold).
 */
export function throughputQuery(
  db: Db,
  o: { type?: string; now?: Date },
  ranges: { minutes: [number, number] | null; secondFrom: number; hours: readonly number[] },
): Fragment {
  const sql = db.sql;
  const t = sql(db.table);
  const now = nowFragment(db, o.now);
  const type = o.type === undefined ? sql`` : sql`and type = ${o.type}`;
  const at = (ms: number) => sql`${new Date(ms).toISOString()}::timestamptz`;
  const grouped = (g: string, seconds: number, from: number, to: Fragment) =>
    sql`
    select ${g}::text as g, b::text as b, c, f from (
      select floor(date_part('epoch', updated_at) / ${seconds})::bigint as b,
        count(*) filter (where status = 'completed')::int as c,
        count(*) filter (where status = 'failed')::int as f
      from ${t}
      where status in ('completed', 'failed') ${type}
        and updated_at >= ${at(from)} and ${to}
      group by 1) as ${sql(g)}
    union all`;
  const { minutes, secondFrom, hours } = ranges;
  return sql`
    ${
    minutes
      ? grouped("m", 60, minutes[0] * MINUTE, sql`updated_at < ${at((minutes[1] + 1) * MINUTE)}`)
      : sql``
  }
    ${
    hours.length > 0
      ? grouped("h", 3600, hours[0]! * HOUR, sql`updated_at < ${at((hours.at(-1)! + 1) * HOUR)}`)
      : sql``
  }
    ${grouped("s", 1, secondFrom * 1000, sql`updated_at <= ${now}`)}
    select 'now', floor(extract(epoch from ${now}) * 1000)::bigint::text, 0, 0`;
}
