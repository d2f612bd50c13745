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

/** The `seedtask` script put on PATH: hands the call to `url`, or runs `deno run main.ts`. */
function wrapperScript(url: string): string {
  const deno = Deno.execPath();
  return `#!/bin/sh
# seedtask for the docs examples test: runs in the test process when it can.
t=$(mktemp -d) || exit 70
for a in "$@"; do printf '%s\\0' "$a"; done > "$t/args"
env -0 > "$t/env"
answer=$(curl -sS --max-time 600 --data-binary "$t" '${url}') || { rm -rf "$t"; exit 70; }
if [ "$answer" = spawn ]; then
  rm -rf "$t"
  exec '${deno}' run --allow-all --quiet '${MAIN}' "$@"
fi
cat "$t/out"
cat "$t/err" >&2
rm -rf "$t"
exit "$answer"
`;
}

function splitNul(text: string): string[] {
  const parts = text.split("\0");
  parts.pop();
  return parts;
}

/**
 * A `seedtask` command on PATH for the blocks: `bin` (put it first in PATH) and the server
 * that runs its calls in this process. Dispose to stop the server.
 */
export async function seedtaskOnPath(): Promise<{ bin: string } & AsyncDisposable> {
  const bin = await Deno.makeTempDir({ prefix: "seedtask-docs-bin-" });
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    const dir = await req.text();
    const args = splitNul(await Deno.readTextFile(`${dir}/args`));
    const env: Record<string, string> = {};
    for (const entry of splitNul(await Deno.readTextFile(`${dir}/env`))) {
      const at = entry.indexOf("=");
      if (at > 0) env[entry.slice(0, at)] = entry.slice(at + 1);
    }
    if (!runsInProcess(args, env)) return new Response("spawn");
    let out = "";
    let err = "";
    const code = await main(args, {
      env,
      stdout: (text) => void (out += text),
      stderr: (text) => void (err += text),
      isTTY: false,
    });
    await Deno.writeTextFile(`${dir}/out`, out);
    await Deno.writeTextFile(`${dir}/err`, err);
    return new Response(String(code));
  });
  const url = `http://127.0.0.1:${server.addr.port}/`;
  await Deno.writeTextFile(`${bin}/seedtask`, wrapperScript(url), { mode: 0o755 });
  return {
    bin,
    async [Symbol.asyncDispose]() {
      await server.shutdown();
      await Deno.remove(bin, { recursive: true });
    },
  };
}

/** Runs `block` with bash (`-e -o pipefail -x`) in `cwd` with `env`. */
export async function runBlock(
  block: ShellBlock,
  options: { cwd: string; env: Record<string, string> },
): Promise<BlockResult> {
  const out = await new Deno.Command("bash", {
    args: ["-e", "-o", "pipefail", "-x", "-c", block.code],
    cwd: options.cwd,
    env: options.env,
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { block, code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** A failed block as the test reports it: where, the exit code, and the end of its output. */
export function describeFailure(r: BlockResult): string {
  const tail = (text: string) => text.trimEnd().split("\n").slice(-15).join("\n");
  return `${r.block.file}:${r.block.line}: the sh block exited ${r.code}\n` +
    `--- block\n${r.block.code}\n--- stderr (trace)\n${tail(r.stderr)}\n` +
    `--- stdout\n${tail(r.stdout)}\n` +
    `(fix the example, or mark it with <!-- not run: <reason> --> on the line before)`;
}
