/** Scratch directories for the `--embedded` tests, and what a command left in them. */
import { runMain } from "./run_main.ts";

/** A new empty directory under the system's temporary directory. */
export async function tempDir(): Promise<string> {
  return await Deno.makeTempDir({ prefix: "seedtask-embedded-" });
}

/** Names in `dir` (recursively), sorted: what a command left on disk. */
export async function tree(dir: string, prefix = ""): Promise<string[]> {
  const names: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    names.push(prefix + e.name);
    if (e.isDirectory) names.push(...await tree(`${dir}/${e.name}`, `${prefix}${e.name}/`));
  }
  return names.sort();
}

let template: Promise<string> | undefined;
/** The directory that holds the original: {@link copyOfDatabase.cleanUp} removes it. */
let templateRoot: string | undefined;

/**
 * Copies into `dir` (which must not exist) a database a command created: one a test of this
 * file made anyway and handed over with {@link copyOfDatabase.adopt}, or else the one that
 * `seedtask --embedded DIR migrate` creates for the first call in this test file — so a test
 * that needs a database but is not about creating one pays no initdb of its own (seconds of
 * CPU each). `copyOfDatabase.cleanUp` removes that original (`Deno.test.afterAll`).
 */
export async function copyOfDatabase(dir: string): Promise<void> {
  const source = await copyOfDatabase.prepare();
  const cp = await new Deno.Command("cp", { args: ["-a", source, dir] }).output();
  if (!cp.success) {
    throw new Error(`cp -a ${source} ${dir}: ${new TextDecoder().decode(cp.stderr)}`);
  }
}

/** Starts making the database {@link copyOfDatabase} copies (once); its directory. */
copyOfDatabase.prepare = (): Promise<string> => {
  template ??= (async () => {
    const root = await tempDir();
    templateRoot = root;
    const r = await runMain(["--embedded", `${root}/db`, "migrate"]);
    if (r.code !== 0) throw new Error(`migrate --embedded failed: ${r.stderr}`);
    return `${root}/db`;
  })();
  // a failure is reported by the test that awaits it, not as an unhandled rejection
  template.catch(() => {});
  return template;
};

/**
 * Makes `dir` — a database a test created and is done with (closed: no process holds it) — the
 * original {@link copyOfDatabase} copies, unless there is one already. True when adopted:
 * `cleanUp` then removes `root`, the directory that holds `dir`; false when the caller still
 * has to.
 */
copyOfDatabase.adopt = (dir: string, root: string): boolean => {
  if (template) return false;
  template = Promise.resolve(dir);
  templateRoot = root;
  return true;
};

copyOfDatabase.cleanUp = async (): Promise<void> => {
  if (!template) return;
  await template.catch(() => undefined);
  const root = templateRoot;
  template = undefined;
  templateRoot = undefined;
  if (root) await Deno.remove(root, { recursive: true });
};
