/** Scratch directories for the `--embedded` tests, and what a command left in them. */

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
