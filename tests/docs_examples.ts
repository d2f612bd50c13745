/**
 * Runs the shell examples of README.md and docs/*.md: every fenced block with language `sh`,
 * unless the line before it is `<!-- not run: <reason> -->`.
 *
 * Each file gets a fresh database with a migrated `tasks` table holding {@link DOC_TASKS}, a
 * temporary working directory, and a `seedtask` command on PATH. That command is a small shell
 * script which hands its arguments and environment to this process, where `main()` runs them
 * in process — a Deno start per command would make the test slow — and falls back to
 * `deno run main.ts` for what must be a process of its own (stdin, files relative to the
 * working directory, the embedded database, long-running commands).
 */
import { main } from "../main.ts";

/** A fenced `sh` block of a markdown file. */
export interface ShellBlock {
  /** The markdown file, as given. */
  file: string;
  /** 1-based line of the opening fence. */
  line: number;
  /** The block's text, without the fences (and without a list item's indentation). */
  code: string;
  /** The reason after `<!-- not run:`, when the block is marked as not run. */
  notRun?: string;
}

/** Every fenced code block with language `sh` in `markdown`, in order. */
export function shellBlocks(file: string, markdown: string): ShellBlock[] {
  const lines = markdown.split("\n");
  const blocks: ShellBlock[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^(\s*)(`{3,}|~{3,})\s*([\w+-]*)/.exec(lines[i]!);
    if (!open) continue;
    const [, indent, fence, lang] = open as unknown as [string, string, string, string];
    let end = i + 1;
    while (end < lines.length && !lines[end]!.trimStart().startsWith(fence)) end++;
    if (lang === "sh") {
      let prev = i - 1;
      while (prev >= 0 && lines[prev]!.trim() === "") prev--;
      const mark = prev >= 0 ? /^\s*<!--\s*not run:\s*(.*?)\s*-->\s*$/.exec(lines[prev]!) : null;
      const code = lines.slice(i + 1, end)
        .map((l) => l.startsWith(indent) ? l.slice(indent.length) : l.trimStart())
        .join("\n");
      blocks.push({ file, line: i + 1, code, ...(mark ? { notRun: mark[1] } : {}) });
    }
    i = end;
  }
  return blocks;
}

/** The outcome of running one block. */
export interface BlockResult {
  block: ShellBlock;
  code: number;
  stdout: string;
  /** The shell's trace (`+ command` lines) interleaved with the commands' stderr. */
  stderr: string;
}

const MAIN = new URL("../main.ts", import.meta.url).pathname;
const CONFIG = new URL("../deno.json", import.meta.url).pathname;

/** Commands that need a process of their own: they serve, wait, or read stdin. */
const SPAWNED_COMMANDS = new Set(["serve", "dispatch", "demo", "listen"]);

/** Whether `args` (with `env`) can run in this process rather than as `deno run main.ts`. */
export function runsInProcess(args: string[], env: Record<string, string>): boolean {
  if (env.SEEDTASK_EMBEDDED !== undefined) return false;
  if (
    args.some((a) =>
      a === "-" || a === "--embedded" || a.startsWith("--embedded=") ||
      a === "--file" || a.startsWith("--file=")
    )
  ) return false;
  const command = args.find((a) => !a.startsWith("-"));
  return !(command !== undefined && SPAWNED_COMMANDS.has(command));
}

/**
 * The `seedtask` script put on PATH: hands the call to the test process on `port`, or runs
 * `deno run main.ts`. It uses bash builtins only (`/dev/tcp`, `read -N`), so a call in process
 * costs one bash start: the request is the working directory, the arguments and the
 * environment, NUL-separated and counted; the answer is the exit code, then stderr and stdout,
 * each after its length in bytes.
 */
function wrapperScript(port: number): string {
  const deno = Deno.execPath();
  return `#!/usr/bin/env bash
# seedtask for the docs examples test: runs in the test process when it can.
export LC_ALL=C
vars=($(compgen -e))
exec 3<>/dev/tcp/127.0.0.1/${port} || exit 70
{
  printf '%s\\0' "$PWD" "$#" "$@" "\${#vars[@]}"
  for v in "\${vars[@]}"; do printf '%s=%s\\0' "$v" "\${!v}"; done
} >&3
IFS= read -r code <&3
[ -n "$code" ] || { echo "seedtask (docs test wrapper): the test process did not answer" >&2; exit 70; }
if [ "$code" = spawn ]; then
  exec 3>&-
  exec '${deno}' run --allow-all --quiet --config '${CONFIG}' '${MAIN}' "$@"
fi
IFS= read -r n <&3
err=; [ "$n" -gt 0 ] && IFS= read -r -d '' -N "$n" err <&3
IFS= read -r n <&3
out=; [ "$n" -gt 0 ] && IFS= read -r -d '' -N "$n" out <&3
printf '%s' "$err" >&2
printf '%s' "$out"
exit "$code"
`;
}

/**
 * A `seedtask` command on PATH for the blocks: `bin` (put it first in PATH) and the server
 * that runs its calls in this process. Dispose to stop the server.
 */
export async function seedtaskOnPath(): Promise<{ bin: string } & AsyncDisposable> {
  const bin = await Deno.makeTempDir({ prefix: "seedtask-docs-bin-" });
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const serving = (async () => {
    for await (const conn of listener) {
      void serveCall(conn).catch(() => {}).finally(() => conn.close());
    }
  })();
  await Deno.writeTextFile(`${bin}/seedtask`, wrapperScript(listener.addr.port), { mode: 0o755 });
  return {
    bin,
    async [Symbol.asyncDispose]() {
      listener.close();
      await serving.catch(() => {});
      await Deno.remove(bin, { recursive: true });
    },
  };
}

/** Reads one call from `conn` (see {@link wrapperScript}), runs it, and answers. */
async function serveCall(conn: Deno.Conn): Promise<void> {
  const fields: string[] = [];
  const dec = new TextDecoder();
  let pending = new Uint8Array(0);
  const buf = new Uint8Array(65536);
  const complete = () => {
    if (fields.length < 2) return false;
    const argc = Number(fields[1]);
    if (fields.length < 3 + argc) return false;
    return fields.length >= 3 + argc + Number(fields[2 + argc]);
  };
  while (!complete()) {
    const n = await conn.read(buf);
    if (n === null) return;
    const joined = new Uint8Array(pending.length + n);
    joined.set(pending);
    joined.set(buf.subarray(0, n), pending.length);
    let start = 0;
    for (let i = 0; i < joined.length; i++) {
      if (joined[i] === 0) {
        fields.push(dec.decode(joined.subarray(start, i)));
        start = i + 1;
      }
    }
    pending = joined.slice(start);
  }
  const argc = Number(fields[1]);
  const args = fields.slice(2, 2 + argc);
  const env: Record<string, string> = {};
  for (const entry of fields.slice(3 + argc)) {
    const at = entry.indexOf("=");
    if (at > 0) env[entry.slice(0, at)] = entry.slice(at + 1);
  }
  const enc = new TextEncoder();
  const write = async (bytes: Uint8Array) => {
    let rest = bytes;
    while (rest.length) rest = rest.subarray(await conn.write(rest));
  };
  if (!runsInProcess(args, env)) return await write(enc.encode("spawn\n"));
  let out = "";
  let err = "";
  const code = await main(args, {
    env,
    stdout: (text) => void (out += text),
    stderr: (text) => void (err += text),
    isTTY: false,
  });
  const errBytes = enc.encode(err);
  const outBytes = enc.encode(out);
  await write(enc.encode(`${code}\n${errBytes.length}\n`));
  await write(errBytes);
  await write(enc.encode(`${outBytes.length}\n`));
  await write(outBytes);
}

/** The longest a block may run. */
const BLOCK_TIMEOUT_MS = 180_000;

/** Runs `block` with bash (`-e -o pipefail -x`) in `cwd` with `env`. */
export async function runBlock(
  block: ShellBlock,
  options: { cwd: string; env: Record<string, string> },
): Promise<BlockResult> {
  // A safety net only: an example that waits for ever fails instead of hanging the suite.
  const child = new Deno.Command("bash", {
    args: ["-e", "-o", "pipefail", "-x", "-c", block.code],
    cwd: options.cwd,
    env: options.env,
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const timer = setTimeout(() => child.kill("SIGKILL"), BLOCK_TIMEOUT_MS);
  const out = await child.output().finally(() => clearTimeout(timer));
  const dec = new TextDecoder();
  const stderr = dec.decode(out.stderr) +
    (out.signal === "SIGKILL" ? `\n(killed after ${BLOCK_TIMEOUT_MS / 1000} s)` : "");
  return { block, code: out.code, stdout: dec.decode(out.stdout), stderr };
}

/** A failed block as the test reports it: where, the exit code, and the end of its output. */
export function describeFailure(r: BlockResult): string {
  const tail = (text: string) => text.trimEnd().split("\n").slice(-15).join("\n");
  return `${r.block.file}:${r.block.line}: the sh block exited ${r.code}\n` +
    `--- block\n${r.block.code}\n--- stderr (trace)\n${tail(r.stderr)}\n` +
    `--- stdout\n${tail(r.stdout)}\n` +
    `(fix the example, or mark it with <!-- not run: <reason> --> on the line before)`;
}
