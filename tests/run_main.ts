/**
 * Runs the CLI in process: `main(args, context)` with captured stdout and stderr, so a test can
 * drive hundreds of invocations without spawning a Deno process for each.
 */
import { main } from "../main.ts";
import type { CliResult } from "./helpers.ts";

/**
 * Runs seedtask in this process with `env` as its whole environment (NO_COLOR set, nothing
 * inherited) and returns its exit code and output, like `runCli()`; `stdin` is its standard input.
 */
export async function runMain(
  args: string[],
  options: { env?: Record<string, string>; isTTY?: boolean; stdin?: string } = {},
): Promise<CliResult> {
  let stdout = "";
  let stderr = "";
  const code = await main(args, {
    env: { NO_COLOR: "1", ...options.env },
    stdout: (text) => void (stdout += text),
    stderr: (text) => void (stderr += text),
    isTTY: options.isTTY ?? false,
    stdin: options.stdin === undefined
      ? undefined
      : new Blob([options.stdin]).stream() as ReadableStream<Uint8Array>,
  });
  return { code, stdout, stderr };
}
