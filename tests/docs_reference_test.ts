/**
 * The generated reference pages are what the code generates: docs/cli.md from the commander
 * tree, the routes of docs/http.md from `/openapi.json` (tools/gen_docs.ts). A flag or route
 * changed without `deno task docs` fails here.
 */
import assert from "node:assert/strict";
import { generatedPages, splitHelp } from "../tools/gen_docs.ts";
import { buildProgram } from "../main.ts";

const ROOT = new URL("../", import.meta.url);

Deno.test("docs: docs/cli.md and the routes of docs/http.md are what `deno task docs` generates", async () => {
  for (const page of await generatedPages()) {
    const committed = await Deno.readTextFile(new URL(page.path, ROOT));
    assert.ok(
      committed === page.text,
      `${page.path} differs from what the code generates: run \`deno task docs\` and commit it`,
    );
  }
});

Deno.test("docs: the reference lists every command and flag, defaults from the schemas", async () => {
  const cli = await Deno.readTextFile(new URL("docs/cli.md", ROOT));
  const program = buildProgram({ env: {}, out: async () => {}, err: async () => {}, isTTY: false });
  for (const cmd of program.commands) {
    assert.ok(cli.includes(`## seedtask ${cmd.name()}\n`), cmd.name());
    for (const o of cmd.options) {
      assert.ok(cli.includes(`\`${o.flags}\``), `${cmd.name()} ${o.flags}`);
    }
  }
  const list = program.commands.find((c) => c.name() === "list")!;
  const sort = splitHelp(list.options.find((o) => o.long === "--sort")!);
  assert.deepEqual(sort.choices, '"updated", "created"');
  assert.equal(sort.dflt, '"updated"');
});

Deno.test("npm package: the version is deno.json's, and it ships every directory main.ts needs", async () => {
  const pkg = JSON.parse(await Deno.readTextFile(new URL("package.json", ROOT)));
  const deno = JSON.parse(await Deno.readTextFile(new URL("deno.json", ROOT)));
  assert.equal(pkg.version, deno.version);
  assert.equal(pkg.bin.seedtask, "bin/seedtask.cjs");
  const main = await Deno.readTextFile(new URL("main.ts", ROOT));
  const dirs = new Set([...main.matchAll(/from "\.\/(\w+)\//g)].map((m) => `${m[1]}/`));
  for (const dir of dirs) assert.ok(pkg.files.includes(dir), `package.json "files" lacks ${dir}`);
  assert.ok(pkg.files.includes("deno.lock") && pkg.files.includes("deno.json"));
});

Deno.test("docs: every relative link of README.md and docs/*.md points at a file that exists", async () => {
  const files = ["README.md"];
  for await (const e of Deno.readDir(new URL("docs/", ROOT))) {
    if (e.name.endsWith(".md")) files.push(`docs/${e.name}`);
  }
  const broken: string[] = [];
  for (const file of files) {
    const text = await Deno.readTextFile(new URL(file, ROOT));
    for (const [, target] of text.matchAll(/\]\(([^)\s]+)\)/g)) {
      if (/^(https?:|mailto:|#)/.test(target!)) continue;
      const path = target!.split("#")[0]!;
      const url = new URL(path, new URL(file, ROOT));
      try {
        await Deno.stat(url);
      } catch {
        broken.push(`${file}: ${target}`);
      }
    }
  }
  assert.deepEqual(broken, []);
});
