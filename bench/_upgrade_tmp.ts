import { ensureDatabase, prepareFilledTable } from "./data.ts";
const dsn = "postgres://postgres@127.0.0.1:5432/seedtask_bench_final";
const sql = await ensureDatabase(dsn);
for (const n of [1_000_000, 10_000_000]) {
  const f = await prepareFilledTable(sql, dsn, n);
  Deno.stdout.writeSync(new TextEncoder().encode(JSON.stringify(f) + "\n"));
}
await sql.end();
