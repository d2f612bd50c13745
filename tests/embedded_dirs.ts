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

/**
 * Copies into `dir` (which must not exist) a database that `seedtask --embedded DIR migrate`
 * created: the one made for the first call in this test file, so a test that needs a database
 * but is not about creating one pays no initdb of its own (seconds of CPU each).
 * `copyOfDatabase.cleanUp` removes that original (`Deno.test.afterAll`).
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
    const r = await runMain(["--embedded", `${root}/db`, "migrate"]);
    if (r.code !== 0) throw new Error(`migrate --embedded failed: ${r.stderr}`);
    return `${root}/db`;
  })();
  // a failure is reported by the test that awaits it, not as an unhandled rejection
  template.catch(() => {});
  return template;
};

copyOfDatabase.cleanUp = async (): Promise<void> => {
  if (!template) return;
  const source = await template.catch(() => undefined);
  template = undefined;
  if (source) await Deno.remove(source.replace(/\/db$/, ""), { recursive: true });
};
