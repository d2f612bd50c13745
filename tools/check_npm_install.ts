/**
 * Checks the Node-only install of the README: packs this checkout with `npm pack`, installs the
 * tarball with `npm install -g` into a temporary prefix, and runs the installed `seedtask` with
 * a PATH that holds `node` but no `deno`. Needs npm and the npm registry (it installs the `deno`
 * package); not part of the test suite for that reason. `deno task check:npm`.
 *
 * @module
 */
import { VERSION } from "../lib/version.ts";

const ROOT = new URL("../", import.meta.url).pathname;

async function run(
  command: string,
  args: string[],
  options: { cwd?: string; env?: Record<string, string>; clearEnv?: boolean } = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(command, {
    args,
    ...options,
    stdout: "piped",
    stderr: "piped",
  })
    .output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

function expect(ok: boolean, what: string, detail = ""): void {
  if (!ok) throw new Error(`${what}${detail ? `\n${detail}` : ""}`);
  // deno-lint-ignore no-console -- a tool's report
  console.log(`ok   ${what}`);
}

const tmp = await Deno.makeTempDir({ prefix: "seedtask-npm-" });
try {
  const packed = await run("npm", ["pack", "--pack-destination", tmp, ROOT], { cwd: tmp });
  expect(packed.code === 0, "npm pack", `${packed.code} ${packed.stderr} ${packed.stdout}`);
  const tarball = `${tmp}/${packed.stdout.trim().split("\n").at(-1)}`;

  const prefix = `${tmp}/prefix`;
  const installed = await run("npm", ["install", "-g", "--prefix", prefix, tarball], { cwd: tmp });
  expect(installed.code === 0, `npm install -g --prefix ${prefix} ${tarball}`, installed.stderr);

  // A PATH with node and the installed seedtask, and no deno.
  const nodeOnly = `${tmp}/node-only`;
  await Deno.mkdir(nodeOnly);
  const node = (await run("sh", ["-c", "command -v node"])).stdout.trim();
  await Deno.symlink(node, `${nodeOnly}/node`);
  const env: Record<string, string> = {
    PATH: `${prefix}/bin:${nodeOnly}`,
    HOME: Deno.env.get("HOME") ?? tmp,
  };
  const which = await run("/bin/sh", ["-c", "command -v deno || echo none"], {
    env,
    clearEnv: true,
  });
  expect(which.stdout.trim() === "none", "no deno on the PATH the check uses", which.stdout);

  const version = await run(`${prefix}/bin/seedtask`, ["--version"], { env, clearEnv: true });
  expect(
    version.code === 0 && version.stdout.trim() === VERSION,
    `seedtask --version prints ${VERSION}`,
    `${version.code} ${version.stdout} ${version.stderr}`,
  );

  const dsn = Deno.env.get("SEEDTASK_TEST_DSN") ?? "postgres://postgres@127.0.0.1:5432/test";
  const list = await run(
    `${prefix}/bin/seedtask`,
    ["--dsn", dsn, "--table", "seedtask_npm_check_missing", "list"],
    { env, clearEnv: true },
  );
  expect(
    list.code === 1 && /does not exist/.test(list.stderr),
    "seedtask list reaches PostgreSQL and reports a missing table with exit 1",
    `${list.code} ${list.stderr}`,
  );
} finally {
  await Deno.remove(tmp, { recursive: true });
}
