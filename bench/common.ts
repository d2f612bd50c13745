/**
 * Shared pieces of the benchmark harness: output, timing and percentiles, child processes
 * (tracked so an interrupted run leaves nothing behind), the machine description, and the
 * markdown tables every suite prints and writes to RESULTS.md.
 */
import type postgres from "postgres";

export const REPO_DIR = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
export const BENCH_DIR = `${REPO_DIR}/bench`;
export const MAIN = `${REPO_DIR}/main.ts`;

/** `deno run` arguments that start seedtask from source on `table` of `dsn`, then `args`. */
export function seedtaskArgs(dsn: string, table: string, ...args: string[]): string[] {
  return ["run", "-A", MAIN, "--dsn", dsn, "--table", table, ...args];
}

const encoder = new TextEncoder();

/** Writes a line to stdout (the harness's only output channel besides RESULTS.md). */
export function say(text = ""): void {
  let bytes = encoder.encode(text + "\n");
  while (bytes.length > 0) bytes = bytes.subarray(Deno.stdout.writeSync(bytes));
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Summary of latency samples, in milliseconds. */
export interface Summary {
  n: number;
  p50: number;
  p95: number;
  p99: number;
  mean: number;
  min: number;
  max: number;
}

/** Nearest-rank percentile of an ascending array. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))]!;
}

export function summarize(samples: readonly number[]): Summary {
  const s = [...samples].sort((a, b) => a - b);
  return {
    n: s.length,
    p50: percentile(s, 50),
    p95: percentile(s, 95),
    p99: percentile(s, 99),
    mean: s.reduce((a, b) => a + b, 0) / Math.max(1, s.length),
    min: s[0] ?? NaN,
    max: s.at(-1) ?? NaN,
  };
}

/**
 * Runs `fn` sequentially until `reps` runs or `budgetMs` elapsed (at least `minReps`), after
 * `warmup` unrecorded runs. Returns the latency of each recorded run in ms.
 */
export async function repeat(
  fn: () => Promise<unknown>,
  options: { reps: number; budgetMs: number; minReps?: number; warmup?: number },
): Promise<number[]> {
  // Warm-up runs count against the budget: a slow operation gets fewer of them.
  const warmDeadline = performance.now() + options.budgetMs / 4;
  for (let i = 0; i < (options.warmup ?? 2); i++) {
    await fn();
    if (performance.now() > warmDeadline) break;
  }
  const samples: number[] = [];
  const deadline = performance.now() + options.budgetMs;
  const minReps = options.minReps ?? 5;
  while (
    samples.length < options.reps &&
    (samples.length < minReps || performance.now() < deadline)
  ) {
    const t0 = performance.now();
    await fn();
    samples.push(performance.now() - t0);
  }
  return samples;
}

/** `1.23 ms`, `456 ms`, `7.8 s`. */
export function ms(value: number): string {
  if (!Number.isFinite(value)) return "n/a";
  if (value >= 10_000) return `${(value / 1000).toFixed(1)} s`;
  if (value >= 100) return `${Math.round(value)} ms`;
  if (value >= 10) return `${value.toFixed(1)} ms`;
  return `${value.toFixed(2)} ms`;
}

/** Thousands separators: 1,000,000. */
export function int(value: number): string {
  return Number.isFinite(value) ? Math.round(value).toLocaleString("en-US") : "n/a";
}

export function ratio(value: number): string {
  return Number.isFinite(value) ? `${value.toFixed(2)}x` : "n/a";
}

/** `1m`, `10m`, `20k`, `1500`. */
export function rowsLabel(rows: number): string {
  if (rows >= 1_000_000 && rows % 1_000_000 === 0) return `${rows / 1_000_000}M`;
  if (rows >= 1000 && rows % 1000 === 0) return `${rows / 1000}k`;
  return String(rows);
}

/**
 * A markdown table, padded so it reads well in a terminal too. Columns whose cells all look
 * like numbers are right-aligned.
 */
export function mdTable(headers: string[], rows: (string | number)[][]): string {
  const body = rows.map((r) => r.map(String));
  const cells = [headers, ...body];
  const widths = headers.map((_, i) => Math.max(3, ...cells.map((r) => (r[i] ?? "").length)));
  const numeric = headers.map((_, i) =>
    i > 0 && body.every((r) => /^([-+<]?[\d.,]+|—|n\/a)/.test(r[i] ?? ""))
  );
  const line = (r: string[]) =>
    `| ${
      r.map((c, i) => (numeric[i] ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join(" | ")
    } |`;
  const sep = `| ${
    widths.map((w, i) => (numeric[i] ? "-".repeat(w - 1) + ":" : "-".repeat(w))).join(" | ")
  } |`;
  return [line(cells[0]!), sep, ...body.map(line)].join("\n");
}

// ---------------------------------------------------------------------------------------------
// Child processes

const children = new Set<Deno.ChildProcess>();

/** Remembers a child so {@link killChildren} can end it if the run is interrupted. */
export function track(child: Deno.ChildProcess): Deno.ChildProcess {
  children.add(child);
  child.status.finally(() => children.delete(child));
  return child;
}

/** Sends SIGTERM to every child still running (then SIGKILL after `graceMs`). */
export async function killChildren(graceMs = 3000): Promise<void> {
  const alive = [...children];
  for (const c of alive) {
    try {
      c.kill("SIGTERM");
    } catch { /* already gone */ }
  }
  const deadline = Date.now() + graceMs;
  for (const c of alive) {
    const left = deadline - Date.now();
    const exited = await Promise.race([c.status.then(() => true), sleep(Math.max(0, left))]);
    if (!exited) {
      try {
        c.kill("SIGKILL");
      } catch { /* already gone */ }
    }
  }
}

/** Stops one child: SIGTERM, then SIGKILL after `graceMs`. Resolves with its exit status. */
export async function stopChild(
  child: Deno.ChildProcess,
  graceMs = 10_000,
): Promise<Deno.CommandStatus> {
  try {
    child.kill("SIGTERM");
  } catch { /* already gone */ }
  const status = await Promise.race([child.status, sleep(graceMs).then(() => null)]);
  if (status) return status;
  try {
    child.kill("SIGKILL");
  } catch { /* already gone */ }
  return await child.status;
}

/** The result of {@link exec}. */
export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
  /** Wall time from spawn to exit, ms. */
  ms: number;
}

/** Runs a program to completion and collects its output. */
export async function exec(
  cmd: string,
  args: string[],
  options: { env?: Record<string, string>; cwd?: string; stdout?: "piped" | "null" } = {},
): Promise<ExecResult> {
  const t0 = performance.now();
  const child = track(
    new Deno.Command(cmd, {
      args,
      env: options.env,
      cwd: options.cwd,
      stdin: "null",
      stdout: options.stdout ?? "piped",
      stderr: "piped",
    }).spawn(),
  );
  const out = await child.output();
  const elapsed = performance.now() - t0;
  const dec = new TextDecoder();
  return {
    code: out.code,
    stdout: options.stdout === "null" ? "" : dec.decode(out.stdout),
    stderr: dec.decode(out.stderr),
    ms: elapsed,
  };
}

/** Like {@link exec} but throws with the command's stderr when it exits non-zero. */
export async function execOk(
  cmd: string,
  args: string[],
  options: { env?: Record<string, string>; cwd?: string; stdout?: "piped" | "null" } = {},
): Promise<ExecResult> {
  const r = await exec(cmd, args, options);
  if (r.code !== 0) {
    throw new Error(
      `${cmd} ${args.join(" ")} exited with ${r.code}: ${r.stderr.trim().slice(-2000)}`,
    );
  }
  return r;
}

/** A long-running child whose stderr (and optionally stdout) is collected as it arrives. */
export interface Background {
  child: Deno.ChildProcess;
  pid: number;
  stdout(): string;
  stderr(): string;
  /** Resolves when stdout or stderr matches (rejects after `timeoutMs` or at exit). */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<void>;
  /** Lines of stdout as they arrive (when stdout is piped). */
  onLine(fn: (line: string) => void): void;
  /** Whether the process has exited. */
  exited(): boolean;
  stop(graceMs?: number): Promise<Deno.CommandStatus>;
}

export function background(
  cmd: string,
  args: string[],
  options: { env?: Record<string, string>; stdout?: "piped" | "null"; keepOutput?: boolean } = {},
): Background {
  const child = track(
    new Deno.Command(cmd, {
      args,
      env: options.env,
      stdin: "null",
      stdout: options.stdout ?? "piped",
      stderr: "piped",
    }).spawn(),
  );
  let out = "";
  let err = "";
  let pending = "";
  const listeners: ((line: string) => void)[] = [];
  const keep = options.keepOutput ?? true;
  const pump = async (stream: ReadableStream<Uint8Array>, isOut: boolean) => {
    const dec = new TextDecoder();
    for await (const chunk of stream) {
      const text = dec.decode(chunk, { stream: true });
      if (!isOut) {
        err = (err + text).slice(-100_000);
        continue;
      }
      if (keep) out = (out + text).slice(-1_000_000);
      if (listeners.length > 0) {
        pending += text;
        let nl: number;
        while ((nl = pending.indexOf("\n")) >= 0) {
          const line = pending.slice(0, nl);
          pending = pending.slice(nl + 1);
          for (const fn of listeners) fn(line);
        }
      }
    }
  };
  if (options.stdout !== "null") void pump(child.stdout, true).catch(() => {});
  void pump(child.stderr, false).catch(() => {});
  let exited = false;
  child.status.then(() => (exited = true));
  return {
    child,
    pid: child.pid,
    stdout: () => out,
    stderr: () => err,
    async waitFor(pattern, timeoutMs = 30_000) {
      const deadline = Date.now() + timeoutMs;
      while (!pattern.test(out) && !pattern.test(err)) {
        if (exited || Date.now() > deadline) {
          throw new Error(
            `${cmd} ${exited ? "exited" : "timed out"} before printing ${pattern}; stderr:\n${
              err.slice(-2000)
            }`,
          );
        }
        await sleep(20);
      }
    },
    onLine(fn) {
      listeners.push(fn);
    },
    exited: () => exited,
    stop: (graceMs) => stopChild(child, graceMs),
  };
}

/** A TCP port nothing listens on right now. */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/**
 * Polls `url` until it answers 200 (rejects after `timeoutMs`, or when `alive()` is false).
 * Resolves with the number of HTTP responses it received (requests that reached the app).
 */
export async function waitForHttp(
  url: string,
  timeoutMs = 30_000,
  alive: () => boolean = () => true,
): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  let last = "";
  let responses = 0;
  while (Date.now() < deadline) {
    if (!alive()) throw new Error(`the server behind ${url} exited`);
    try {
      const res = await fetch(url);
      await res.body?.cancel();
      responses++;
      if (res.ok) return responses;
      last = `HTTP ${res.status}`;
    } catch (err) {
      last = (err as Error).message;
    }
    await sleep(100);
  }
  throw new Error(`${url} did not answer 200 within ${timeoutMs} ms (${last})`);
}

/** VmRSS and VmHWM (peak) of a running process, in MiB; null once it has exited. */
export function processMemory(pid: number): { rssMiB: number; hwmMiB: number } | null {
  try {
    const status = Deno.readTextFileSync(`/proc/${pid}/status`);
    const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, "m").exec(status)?.[1]);
    return { rssMiB: kb("VmRSS") / 1024, hwmMiB: kb("VmHWM") / 1024 };
  } catch {
    return null;
  }
}

/** Whether an executable is on PATH. */
export async function which(name: string): Promise<string | null> {
  const r = await exec("sh", ["-c", `command -v ${name}`]).catch(() => null);
  return r && r.code === 0 ? r.stdout.trim() : null;
}

// ---------------------------------------------------------------------------------------------
// The machine

/** What RESULTS.md records about where the numbers came from. */
export interface Machine {
  date: string;
  cores: number;
  cpu: string;
  ramGiB: number;
  postgres: string;
  deno: string;
  node: string;
  kernel: string;
  /** Server settings that change the numbers. */
  pgSettings: string;
}

export async function describeMachine(sql: postgres.Sql): Promise<Machine> {
  const cpuinfo = await Deno.readTextFile("/proc/cpuinfo").catch(() => "");
  const meminfo = await Deno.readTextFile("/proc/meminfo").catch(() => "");
  const memKb = Number(/^MemTotal:\s+(\d+)/m.exec(meminfo)?.[1] ?? NaN);
  const [v] = await sql<{ v: string }[]>`select current_setting('server_version') as v`;
  const settings = await sql<{ name: string; setting: string; unit: string | null }[]>`
    select name, setting, unit from pg_settings
    where name in ('shared_buffers', 'work_mem', 'max_connections', 'autovacuum',
                   'synchronous_commit', 'max_parallel_workers_per_gather', 'jit')
    order by name`;
  const node = await exec("node", ["--version"]).catch(() => null);
  const kernel = await exec("uname", ["-r"]).catch(() => null);
  const fmt = (s: { name: string; setting: string; unit: string | null }) => {
    if (s.unit === "8kB") return `${s.name}=${Math.round(Number(s.setting) * 8 / 1024)}MB`;
    if (s.unit === "kB") return `${s.name}=${Math.round(Number(s.setting) / 1024)}MB`;
    return `${s.name}=${s.setting}`;
  };
  return {
    date: new Date().toISOString().replace(/\.\d+Z$/, "Z"),
    cores: navigator.hardwareConcurrency,
    cpu: /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1]?.trim() ?? "unknown CPU",
    ramGiB: Math.round(memKb / 1024 / 1024 * 10) / 10,
    postgres: `PostgreSQL ${v!.v}`,
    deno: `Deno ${Deno.version.deno}`,
    node: node?.code === 0 ? `Node ${node.stdout.trim()}` : "Node (not found)",
    kernel: kernel?.code === 0 ? `Linux ${kernel.stdout.trim()}` : Deno.build.os,
    pgSettings: settings.map(fmt).join(", "),
  };
}

export function machineLine(m: Machine): string {
  return `${m.cores} cores (${m.cpu}), ${m.ramGiB} GiB RAM, ${m.postgres}, ${m.deno}, ${m.node}, ${m.kernel}`;
}
