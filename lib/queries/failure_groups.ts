import type postgres from "postgres";
import { type Db, guard } from "../db.ts";
import { type FailureGroupsOptions, resolveFailureGroupsOptions } from "../input/insight.ts";
import type { TaskStatus } from "../table/contract.ts";
import { fingerprintExpression, firstLineExpression } from "./fingerprint.ts";
import { nowFragment } from "./queue_health.ts";

export { failureGroupId, fingerprintError } from "./fingerprint.ts";
export type { FailureGroupsOptions };

/** One failure group: the failures of one task type whose errors share a fingerprint. */
export interface FailureGroup {
  /** 12 hex digits naming (type, fingerprint): what `retry --group` takes. */
  id: string;
  /** The task type. */
  type: string;
  /** The normalised first line of the error (see `fingerprintError`). */
  fingerprint: string;
  /** Failures of the group among those grouped (the sample, when sampled). */
  count: number;
  /** count / failures grouped. */
  share: number;
  /** count scaled to the window's true total when sampled; else count. */
  estimated_total: number;
  /** Its failures by status (failed, retry, …). */
  statuses: Record<string, number>;
  /** Its oldest failure grouped (by updated_at). */
  first_seen: Date;
  /** Its newest failure. */
  last_seen: Date;
  /** Failures in the last hour and in the hour before it. */
  trend: {
    this_hour: number;
    previous_hour: number;
    /** False when the sample does not reach back two hours: previous_hour is then a floor. */
    complete: boolean;
  };
  /** The domains most affected (at most three), most failures first. */
  domains: Array<{ domain: string | null; count: number }>;
  /** The fewest and most attempts among its failures. */
  attempts: { min: number; max: number };
  /** Up to five task ids, newest first. */
  sample_ids: string[];
  /** The newest failure's whole error text. */
  example_error: string | null;
}

/** What `seedtask failures` reports. */
export interface FailureGroups {
  /** The largest groups, most failures first (at most `top`). */
  groups: FailureGroup[];
  /** Groups found (`groups` holds the top ones). */
  group_count: number;
  /** Failures in the window: exact, also when sampled. */
  total: number;
  /** Failures grouped: all of them, or the newest `sample_limit` when sampled. */
  analyzed: number;
  /** The groups were computed on the newest failures only (see `total`). */
  sampled: boolean;
  /** The sample limit in force; null with exact. */
  sample_limit: number | null;
  /** Oldest failure grouped. */
  analyzed_from: Date | null;
  /** The window: failures updated from `since` to `until`. */
  window: { since: Date; until: Date };
  /** The statuses, type and domain looked at. */
  filter: { statuses: TaskStatus[]; type: string | null; domain: string | null };
  /** When the answer was computed. */
  generated_at: Date;
}

type Fragment = postgres.PendingQuery<postgres.Row[]>;

/**
 * Groups the failures of a window by task type and error fingerprint, largest group first.
 * The fingerprint is computed in the database (`regexp_replace`, see ./fingerprint.ts), so
 * only the groups travel. Bounded: unless `exact`, only the newest `sample` failures are
 * grouped — one backward range scan of the `(status, updated_at)` index per status — and the
 * answer is marked `sampled` with the exact total beside it (an index-only count).
 *
 * @example
 * ```ts
 * const { groups, sampled, total } = await getFailureGroups(db, { sinceMs: 3_600_000 });
 * for (const g of groups) console.log(g.count, g.type, g.fingerprint);
 * ```
 */
export function getFailureGroups(
  db: Db,
  options: FailureGroupsOptions = {},
): Promise<FailureGroups> {
  const o = resolveFailureGroupsOptions(options);
  return guard(db, async () => {
    const sql = db.sql;
    const t = sql(db.table);
    const now = nowFragment(db, o.now);
    const since = sql`${now} - ${o.sinceMs} * interval '1 millisecond'`;
    const narrow = [
      o.type === undefined ? sql`` : sql` and type = ${o.type}`,
      o.domain === undefined ? sql`` : sql` and domain = ${o.domain}`,
    ].reduce((a, b) => sql`${a}${b}`);
    const inWindow = (status: Fragment) =>
      sql`${status} and updated_at >= ${since} and updated_at <= ${now}${narrow}`;
    // Only the part of the error the fingerprint reads travels through the statement.
    // Collation "C" for the keys grouped and joined on: byte comparisons, not the locale's.
    const columns = sql`id, type collate "C" as type, domain, attempts, status::text as status,
      updated_at, ${sql.unsafe(firstLineExpression("error"))} collate "C" as line`;
    // Per status, the newest N by the (status, updated_at) index; then the newest N of those.
    const source = o.exact
      ? sql`select ${columns} from ${t} where ${inWindow(sql`status in ${sql(o.statuses)}`)}`
      : sql`select * from (${
        o.statuses.map((s) =>
          sql`(select ${columns} from ${t} where ${inWindow(sql`status = ${s}`)}
                order by updated_at desc limit ${o.sample})`
        ).reduce((a, b) => sql`${a} union all ${b}`)
      }) w order by updated_at desc limit ${o.sample}`;
    // The window's exact total beside a sample: an index-only count of the (status, updated_at)
    // ranges, its own statement so that it runs beside the grouping, not after it (on 1.2M
    // failures it is the larger part of the cost).
    const totalQuery = o.exact ? null : sql`
      select count(*)::int as n from ${t} where ${inWindow(sql`status in ${sql(o.statuses)}`)}`;
    const fp = sql.unsafe(fingerprintExpression("d.line"));
    // Each distinct first line is fingerprinted once: the regular expressions are the cost,
    // and the failures of one incident often share their text exactly.
    const grouped = sql`
      with w as materialized (${source}),
      f as materialized (
        select d.type, d.line, ${fp} as fingerprint
        from (select distinct type, line from w) d
      ),
      s as materialized (
        select w.id, w.type, w.domain, w.attempts, w.status, w.updated_at, f.fingerprint
        from w join f on f.type = w.type and f.line = w.line
      ),
      g as (
        select type, fingerprint, count(*)::int as count,
          min(updated_at) as first_seen, max(updated_at) as last_seen,
          count(*) filter (where updated_at > ${now} - interval '1 hour')::int as this_hour,
          count(*) filter (where updated_at > ${now} - interval '2 hours'
            and updated_at <= ${now} - interval '1 hour')::int as previous_hour,
          min(attempts) as attempts_min, max(attempts) as attempts_max,
          (array_agg(id order by updated_at desc))[1:5] as sample_ids
        from s group by type, fingerprint
      ),
      top as (select * from g order by count desc, last_seen desc, type, fingerprint
              limit ${o.top}),
      d as materialized (
        select s.type, s.fingerprint, s.domain, count(*)::int as n,
          row_number() over (partition by s.type, s.fingerprint
                             order by count(*) desc, s.domain nulls last) as rank
        from s join top using (type, fingerprint) group by s.type, s.fingerprint, s.domain
      ),
      st as materialized (
        select s.type, s.fingerprint, s.status, count(*)::int as n
        from s join top using (type, fingerprint) group by s.type, s.fingerprint, s.status
      )
      select (select count(*)::int from s) as analyzed,
        (select min(updated_at) from s) as analyzed_from, (select count(*)::int from g) as groups,
        ${since} as since, ${now} as until,
        (select coalesce(json_agg(json_build_object(
            'id', left(md5(top.type || chr(31) || top.fingerprint), 12),
            'type', top.type, 'fingerprint', top.fingerprint, 'count', top.count,
            'first_seen', top.first_seen, 'last_seen', top.last_seen,
            'this_hour', top.this_hour, 'previous_hour', top.previous_hour,
            'attempts_min', top.attempts_min, 'attempts_max', top.attempts_max,
            'sample_ids', top.sample_ids,
            'example_error', (select x.error from ${t} x where x.id = top.sample_ids[1]),
            'domains', (select json_agg(json_build_object('domain', d.domain, 'count', d.n)
                          order by d.rank)
                        from d where d.type = top.type and d.fingerprint = top.fingerprint
                          and d.rank <= 3),
            'statuses', (select json_object_agg(st.status, st.n) from st
                         where st.type = top.type and st.fingerprint = top.fingerprint))
          order by top.count desc, top.last_seen desc, top.type, top.fingerprint), '[]')
         from top) as top`;
    const [[row], counted] = await Promise.all([grouped, totalQuery]);
    const r = row!;
    const analyzed = r.analyzed as number;
    const totalCount = counted ? counted[0]!.n as number : analyzed;
    const sampled = !o.exact && totalCount > analyzed;
    const analyzedFrom = r.analyzed_from as Date | null;
    const until = r.until as Date;
    const complete = !sampled ||
      (analyzedFrom !== null && analyzedFrom.getTime() <= until.getTime() - 2 * 3_600_000);
    const groups = (r.top as Array<Record<string, unknown>>).map((g): FailureGroup => {
      const count = g.count as number;
      return {
        id: g.id as string,
        type: g.type as string,
        fingerprint: g.fingerprint as string,
        count,
        share: analyzed === 0 ? 0 : count / analyzed,
        estimated_total: sampled ? Math.round((count / analyzed) * totalCount) : count,
        statuses: g.statuses as Record<string, number>,
        first_seen: new Date(g.first_seen as string),
        last_seen: new Date(g.last_seen as string),
        trend: {
          this_hour: g.this_hour as number,
          previous_hour: g.previous_hour as number,
          complete,
        },
        domains: (g.domains ?? []) as FailureGroup["domains"],
        attempts: { min: g.attempts_min as number, max: g.attempts_max as number },
        sample_ids: g.sample_ids as string[],
        example_error: g.example_error as string | null,
      };
    });
    return {
      groups,
      group_count: r.groups as number,
      total: totalCount,
      analyzed,
      sampled,
      sample_limit: o.exact ? null : o.sample,
      analyzed_from: analyzedFrom,
      window: { since: r.since as Date, until },
      filter: { statuses: [...o.statuses], type: o.type ?? null, domain: o.domain ?? null },
      generated_at: new Date(),
    };
  });
}
