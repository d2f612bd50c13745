// deno-lint-ignore-file no-console -- a build script reports on the console
/**
 * `deno task compile [target...]`: one self-contained binary per OS into dist/.
 *
 * Needs Deno's compile runtime download (dl.deno.land), which some networks block; the
 * binaries embed main.ts and everything it imports, including the embedded PostgreSQL's
 * wasm and data (imported as modules), so they run from any directory.
 */
const TARGETS = [
  "x86_64-unknown-linux-gnu",
  "aarch64-unknown-linux-gnu",
  "x86_64-apple-darwin",
  "aarch64-apple-darwin",
  "x86_64-pc-windows-msvc",
];

const wanted = Deno.args.length > 0 ? Deno.args : TARGETS;
const unknown = wanted.filter((t) => !TARGETS.includes(t));
if (unknown.length > 0) {
  console.error(
    `error: unknown target ${unknown.join(", ")}: expected one of ${TARGETS.join(", ")}`,
  );
  Deno.exit(2);
}

const root = new URL("..", import.meta.url).pathname;
let failed = 0;
for (const target of wanted) {
  const output = `dist/seedtask-${target}${target.includes("windows") ? ".exe" : ""}`;
  console.error(`compiling ${output}`);
  const { code } = await new Deno.Command(Deno.execPath(), {
    cwd: root,
    args: [
      "compile",
      "--allow-all",
      "--no-check",
      "--target",
      target,
      "--output",
      output,
      "main.ts",
    ],
    stdout: "inherit",
    stderr: "inherit",
  }).output();
  if (code !== 0) {
    failed++;
    console.error(`error: deno compile failed for ${target} (exit ${code})`);
  }
}
Deno.exit(failed === 0 ? 0 : 1);
