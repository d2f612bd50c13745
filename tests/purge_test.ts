import assert from "node:assert/strict";
import { previewPurge } from "../lib/ops/purge_tasks.ts";
import { formatPreview } from "../lib/format/changes.ts";
import { testSchema } from "./helpers.ts";

const DAY = 86_400_000;

Deno.test("previewPurge() samples the most recently updated tasks it would delete, as the dry run says", async () => {
  await using t = await testSchema();
  await t.sql`insert into ${t.sql(t.table)} (type, status, description, updated_at)
    select 'old', 'completed', 'old ' || i, now() - (30 + i) * interval '1 day'
    from generate_series(1, 15) i`;
  await t.sql`insert into ${t.sql(t.table)} (type, status, description) values
    ('new', 'completed', 'recent')`;
  const preview = await previewPurge(t.db, { olderThanMs: 30 * DAY });
  assert.equal(preview.count, 15);
  assert.deepEqual(
    preview.sample.map((s) => s.description),
    Array.from({ length: 10 }, (_, i) => `old ${i + 1}`),
  );
  assert.match(
    formatPreview(preview, "delete", "Add --yes to delete."),
    /^Would delete 15 tasks \(showing the 10 most recently updated\):/,
  );
});
