/**
 * Every `sh` example in README.md and docs/*.md runs, as written, against a fresh database
 * (see tests/docs_examples.ts); a wrong example fails here with its file and line.
 */
import assert from "node:assert/strict";
import postgres from "postgres";
import { adminSql, serverTest, TEST_DSN } from "./helpers.ts";
import {
  describeFailure,
  runBlock,
  runsInProcess,
  seedtaskOnPath,
  type ShellBlock,
  shellBlocks,
} from "./docs_examples.ts";

const ROOT = new URL("../", import.meta.url).pathname;

/** README.md and every docs/*.md, relative to the repository root. */
async function markdownFiles(): Promise<string[]> {
  const files = ["README.md"];
  for await (const entry of Deno.readDir(`${ROOT}docs`)) {
    if (entry.isFile && entry.name.endsWith(".md")) files.push(`docs/${entry.name}`);
  }
  return files.sort();
}

/**
 * The tasks every file's examples start from. The ids are the ones the examples use
 * (`seedtask show 1a2b3c4d`); ages are relative to now.
 */
const DOC_TASKS = `
insert into tasks (id, status, type, domain, description, params, attempts, created_at,
  updated_at, locked_by, locked_at, owner_id, lease_expires_at, last_heartbeat, run_after, error,
  result)
values
  ('1a2b3c4d-0000-4000-8000-000000000001', 'queued', 'graph_embed', 'user_123', 'Embed graph 42',
   '{"graph_id": 42}', 0, now() - interval '2 min', now() - interval '2 min',
   null, null, null, null, null, null, null, null),
  ('5e6f7a8b-0000-4000-8000-000000000002', 'queued', 'fact_search', 'user_123', 'Search facts',
   '{"q": "kelp"}', 0, now() - interval '1 min', now() - interval '1 min',
   null, null, null, null, null, null, null, null),
  ('9c8d7e6f-0000-4000-8000-000000000003', 'running', 'graph_sync', 'org_7', 'Sync graph 7',
   '{"graph_id": 7}', 1, now() - interval '20 min', now() - interval '20 min',
   'host-a-812', now() - interval '20 min', 'host-a-812', now() + interval '1 min', now(),
   null, null, null),
  ('4f0c1d2e-0000-4000-8000-000000000004', 'failed', 'graph_embed', 'user_123',
   'Embed graph 43', '{"graph_id": 43}', 3, now() - interval '3 hours', now() - interval '2 hours',
   'host-a-812', now() - interval '2 hours', null, null, null, null,
   'Max attempts (3) exceeded: connection reset by peer', null),
  ('4f0c1d2f-0000-4000-8000-000000000005', 'failed', 'graph_embed', 'user_456',
   'Embed graph 44', '{"graph_id": 44}', 3, now() - interval '3 hours', now() - interval '2 hours',
   'host-a-812', now() - interval '2 hours', null, null, null, null,
   'Max attempts (3) exceeded: HTTP 503 from executor', null),
  ('7b7b7b7b-0000-4000-8000-000000000006', 'retry', 'fact_ingest', 'org_7', 'Ingest document 9',
   '{"doc": 9}', 1, now() - interval '10 min', now() - interval '5 min',
   'host-a-812', now() - interval '6 min', null, null, null, now() + interval '1 hour',
   'malformed document', null),
  ('c0c0c0c0-0000-4000-8000-000000000007', 'created', 'graph_rag_query', 'user_123',
   'Staged query', '{}', 0, now() - interval '1 hour', now() - interval '1 hour',
   null, null, null, null, null, null, null, null),
  ('d1d1d1d1-0000-4000-8000-000000000008', 'completed', 'graph_embed', 'user_123',
   'Embed graph 40', '{"graph_id": 40}', 1, now() - interval '40 days', now() - interval '40 days',
   'host-a-812', now() - interval '40 days', null, null, null, null, null, '{"vectors": 12}'),
  ('d1d1d1d2-0000-4000-8000-000000000009', 'completed', 'fact_search', 'org_7',
   'Search facts', '{"q": "moss"}', 1, now() - interval '50 min', now() - interval '49 min',
   'host-a-812', now() - interval '50 min', null, null, null, null, null, '{"hits": 3}'),
  ('e2e2e2e2-0000-4000-8000-00000000000a', 'cancelled', 'graph_sync', 'org_7', 'Sync graph 8',
   '{"graph_id": 8}', 0, now() - interval '40 days', now() - interval '40 days',
   null, null, null, null, null, null, null, null)
`;

/** A fresh database holding a migrated `tasks` table with {@link DOC_TASKS}; its DSN. */
async function freshDatabase(): Promise<{ dsn: string } & AsyncDisposable> {
  const name = `st_docs_${crypto.randomUUID().replaceAll("-", "").slice(0, 12)}`;
  const admin = adminSql();
  await admin.unsafe(`create database ${name}`);
  const url = new URL(TEST_DSN);
  url.pathname = `/${name}`;
  const dsn = url.toString();
  const { main } = await import("../main.ts");
  let err = "";
  const code = await main(["migrate"], {
    env: { PG_DSN: dsn },
    stdout: () => {},
    stderr: (t) => void (err += t),
  });
  assert.equal(code, 0, err);
  const sql = postgres(dsn, { max: 1, onnotice: () => {} });
  await sql.unsafe(DOC_TASKS);
  await sql.unsafe("analyze tasks");
  await sql.end();
  return {
    dsn,
    async [Symbol.asyncDispose]() {
      await admin.unsafe(`drop database ${name} with (force)`);
      await admin.end();
    },
  };
}

/** Runs the blocks of one markdown file in order, on a database of its own; the failures. */
async function runFile(blocks: ShellBlock[], bin: string): Promise<string[]> {
  await using db = await freshDatabase();
  const cwd = await Deno.makeTempDir({ prefix: "seedtask-docs-" });
  try {
    const env: Record<string, string> = {
      PATH: `${bin}:${Deno.env.get("PATH") ?? ""}`,
      HOME: Deno.env.get("HOME") ?? cwd,
      PG_DSN: db.dsn,
      NO_COLOR: "1",
    };
    const denoDir = Deno.env.get("DENO_DIR");
    if (denoDir) env.DENO_DIR = denoDir;
    const failures: string[] = [];
    for (const block of blocks) {
      const result = await runBlock(block, { cwd, env });
      if (result.code !== 0) failures.push(describeFailure(result));
    }
    return failures;
  } finally {
    await Deno.remove(cwd, { recursive: true });
  }
}

serverTest(
  "docs: every sh example in README.md and docs/*.md runs against a fresh database",
  "creates a database per markdown file",
  async () => {
    await using seedtask = await seedtaskOnPath();
    const files = await Promise.all((await markdownFiles()).map(async (file) => ({
      file,
      blocks: shellBlocks(file, await Deno.readTextFile(`${ROOT}${file}`)),
    })));
    for (const { file, blocks } of files) {
      for (const b of blocks) {
        assert(b.notRun !== "", `${file}:${b.line}: <!-- not run: --> needs a reason`);
      }
    }
    // Files run at once, each on its own database; the blocks of a file in order.
    const failures = (await Promise.all(
      files.map(({ blocks }) => {
        const toRun = blocks.filter((b) => b.notRun === undefined);
        return toRun.length ? runFile(toRun, seedtask.bin) : Promise.resolve([]);
      }),
    )).flat();
    if (failures.length) assert.fail(`\n${failures.join("\n\n")}`);
  },
);

Deno.test("docs: sh blocks are found, with their not-run marks and a list item's indentation", () => {
  const md = [
    "text",
    "```sh",
    "seedtask list",
    "```",
    "<!-- not run: needs a server -->",
    "",
    "```sh",
    "seedtask serve",
    "```",
    "- item",
    "",
    "  ```sh",
    "  seedtask stats \\",
    "    --json",
    "  ```",
    "```text",
    "```sh inside text is not a block",
    "```",
    "```ts",
    "const x = 1;",
    "```",
  ].join("\n");
  const blocks: ShellBlock[] = shellBlocks("x.md", md);
  assert.deepEqual(blocks, [
    { file: "x.md", line: 2, code: "seedtask list" },
    { file: "x.md", line: 7, code: "seedtask serve", notRun: "needs a server" },
    { file: "x.md", line: 12, code: "seedtask stats \\\n  --json" },
  ]);
});

Deno.test("docs: what runs in process and what needs a seedtask process of its own", () => {
  assert(runsInProcess(["list", "--status", "failed"], {}));
  assert(runsInProcess(["--table", "t", "stats", "--json"], {}));
  assert(!runsInProcess(["serve"], {}));
  assert(!runsInProcess(["--embedded", "./data", "list"], {}));
  assert(!runsInProcess(["list"], { SEEDTASK_EMBEDDED: "./data" }));
  assert(!runsInProcess(["enqueue", "--file", "-"], {}));
});
