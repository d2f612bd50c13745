import { killProcessTree, ProcessWatchdog, stopProcessGroup } from "./process_group.ts";
import type { Task } from "../table/contract.ts";

/** What an execution produced. */
export type ExecutionResult = { success: true; result: unknown } | {
  success: false;
  error: string;
};

/** Runs one task. Must resolve (not reject) and stop promptly when `signal` aborts. */
export interface Executor {
  /** Where tasks are sent, for the "Sending task ... to <target>" log line. */
  readonly target: string;
  /** Restricts claiming to these types (handlers); undefined claims every type. */
  readonly types?: readonly string[];
  /** Runs `task`; resolves with its outcome, promptly once `signal` aborts. */
  execute(task: Task, signal: AbortSignal): Promise<ExecutionResult>;
  /**
   * How long an aborted execution may take to return (the command executor's kill grace and
   * waits); at shutdown the dispatcher waits this long, plus a margin, for aborted work.
   */
  readonly stopTimeoutMs?: number;
  /** Ends what the executor owns (the command executor's watchdog process). */
  close?(): Promise<void>;
}

/** The JSON document an executor receives. */
export interface TaskPayload {
  /** The task's id (also in the `x-seedtask-task-id` header and SEEDTASK_TASK_ID). */
  task_id: string;
  /** The task's type. */
  type: string;
  /** The task's params, as enqueued. */
  params: unknown;
  /** The task's description. */
  description: string | null;
  /** The task's domain. */
  domain: string | null;
  /** The task's drift score. */
  drift_score: number;
}

export function taskPayload(task: Task): TaskPayload {
  return {
    task_id: task.id,
    type: task.type,
    params: task.params,
    description: task.description,
    domain: task.domain,
    drift_score: task.drift_score,
  };
}

function message(err: unknown): string {
  if (err instanceof Error) return err.message || err.name;
  return String(err);
}

function tail(text: string, max = 2000): string {
  const t = text.trim();
  return t.length <= max ? t : `…${t.slice(-max)}`;
}

/**
 * POSTs the payload as JSON to `url` and expects `{"success": true, "result": ...}` or
 * `{"success": false, "error": "..."}`. A non-2xx status, a body that is not that shape, a
 * network error or the timeout is a failed execution.
 */
export function httpExecutor(url: string, options: { timeoutMs: number }): Executor {
  const target = (() => {
    try {
      const u = new URL(url);
      return `${u.origin}${u.pathname}`; // never credentials or query secrets
    } catch {
      return "the executor URL";
    }
  })();
  return {
    target,
    async execute(task, signal) {
      // A timer of our own rather than AbortSignal.timeout(), so that none outlives the request.
      const timeout = new AbortController();
      const timer = setTimeout(() => timeout.abort(), options.timeoutMs);
      try {
        const res = await fetch(url, {
          method: "POST",
          headers: { "content-type": "application/json", "x-seedtask-task-id": task.id },
          body: JSON.stringify(taskPayload(task)),
          signal: AbortSignal.any([signal, timeout.signal]),
        });
        const text = await res.text();
        if (!res.ok) {
          return { success: false, error: `HTTP ${res.status} from executor: ${tail(text, 500)}` };
        }
        let body: unknown;
        try {
          body = JSON.parse(text);
        } catch {
          return { success: false, error: `Executor answered invalid JSON: ${tail(text, 200)}` };
        }
        if (
          typeof body !== "object" || body === null ||
          typeof (body as { success?: unknown }).success !== "boolean"
        ) {
          return { success: false, error: 'Executor answer lacks a boolean "success"' };
        }
        const b = body as { success: boolean; result?: unknown; error?: unknown };
        return b.success ? { success: true, result: b.result ?? null } : {
          success: false,
          error: typeof b.error === "string" ? b.error : JSON.stringify(b.error ?? "Unknown error"),
        };
      } catch (err) {
        if (timeout.signal.aborted) {
          return { success: false, error: `Executor timed out after ${options.timeoutMs}ms` };
        }
        if (signal.aborted) return { success: false, error: "Execution aborted" };
        return { success: false, error: `Executor request failed: ${message(err)}` };
      } finally {
        clearTimeout(timer);
      }
    },
  };
}

/** Options of {@link commandExecutor}. */
export interface CommandExecutorOptions {
  /** Longest execution; then the command is stopped like an aborted one. */
  timeoutMs: number;
  /**
   * The command's whole environment besides SEEDTASK_TASK_ID, _TYPE and _ATTEMPT: nothing is
   * inherited from the dispatcher. Build it with `executorEnv()`. Default: empty.
   */
  env?: Record<string, string>;
  /** How long a stopped command's processes get after SIGTERM before SIGKILL. Default 5s. */
  killGraceMs?: number;
}

/** util-linux's setsid(1), where it is (Linux); undefined elsewhere. */
function findSetsid(): string | undefined {
  for (const path of ["/usr/bin/setsid", "/bin/setsid"]) {
    try {
      if (Deno.statSync(path).isFile) return path;
    } catch { /* not here, or no read permission */ }
  }
  return undefined;
}

/** How long to wait for a command's output pipes once its processes are gone. */
const OUTPUT_WAIT_MS = 1000;

/** Reads a stream to its end in the background; `text()` gives up after a wait. */
function collect(stream: ReadableStream<Uint8Array>): { text(waitMs: number): Promise<string> } {
  const reader = stream.getReader();
  const chunks: Uint8Array[] = [];
  const done = (async () => {
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        chunks.push(value);
      }
    } catch { /* cancelled */ }
  })();
  return {
    async text(waitMs) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      // A process that left the group (setsid) may hold the pipe open for ever.
      await Promise.race([done, new Promise((r) => (timer = setTimeout(r, waitMs)))]);
      clearTimeout(timer);
      await reader.cancel().catch(() => {});
      const dec = new TextDecoder();
      return chunks.map((c) => dec.decode(c, { stream: true })).join("") + dec.decode();
    },
  };
}

/**
 * Runs `command` through the shell for every task: the payload JSON on stdin, the result JSON
 * on stdout (empty stdout is a null result). A non-zero exit is a failure with stderr as the
 * error. The task id, type and attempt are in SEEDTASK_TASK_ID, SEEDTASK_TASK_TYPE and
 * SEEDTASK_ATTEMPT; nothing else of the dispatcher's environment unless `env` passes it.
 *
 * On POSIX each execution leads its own process group (session). On timeout or abort the
 * whole group gets SIGTERM, then SIGKILL after `killGraceMs`; when the command exits, what it
 * left running in its group is stopped the same way; and a watchdog process stops every group
 * still running if the dispatcher dies (even by SIGKILL). The command starts only once the
 * watchdog knows its group. On Windows the process tree is killed (`taskkill /T /F`); nothing
 * stops it if the dispatcher is killed.
 */
export function commandExecutor(
  command: string,
  options: CommandExecutorOptions,
): Executor {
  const windows = Deno.build.os === "windows";
  const graceMs = options.killGraceMs ?? 5000;
  const watchdog = windows ? null : new ProcessWatchdog(graceMs);
  // The command waits for one line on stdin — sent once the watchdog has its group — so that
  // nothing runs unsupervised; `read` takes just that line and leaves the payload.
  const shellArgs = windows ? ["/d", "/s", "/c", command] : [
    "-c",
    `IFS= read -r _ || exit 125\n${command}`,
  ];
  // Each execution leads its own session and process group (pgid = pid). Deno's `detached`
  // does that, but makes every spawn fork the whole runtime (~10ms here); util-linux's setsid
  // does the same between a cheap spawn and the exec of sh.
  const setsid = windows ? undefined : findSetsid();
  const [program, args] = windows
    ? ["cmd", shellArgs]
    : setsid
    ? [setsid, ["sh", ...shellArgs]]
    : ["sh", shellArgs];
  return {
    target: `command \`${command.length > 60 ? command.slice(0, 59) + "…" : command}\``,
    stopTimeoutMs: graceMs + 2000 + OUTPUT_WAIT_MS,
    async execute(task, signal) {
      if (signal.aborted) return { success: false, error: "Execution aborted" };
      let child: Deno.ChildProcess;
      try {
        child = new Deno.Command(program, {
          args,
          stdin: "piped",
          stdout: "piped",
          stderr: "piped",
          clearEnv: true,
          env: {
            ...options.env,
            SEEDTASK_TASK_ID: task.id,
            SEEDTASK_TASK_TYPE: task.type,
            SEEDTASK_ATTEMPT: String(task.attempts),
          },
          detached: !windows && !setsid,
        }).spawn();
      } catch (err) {
        return { success: false, error: `Cannot start executor command: ${message(err)}` };
      }
      const pid = child.pid;
      const stdout = collect(child.stdout);
      const stderr = collect(child.stderr);
      let exited = false;
      const status = child.status.finally(() => (exited = true));
      const stopGroup = async () => {
        await stopProcessGroup(pid, graceMs);
        // No group yet (setsid has not run): then the leader is all there is.
        if (!exited) {
          try {
            child.kill("SIGKILL");
          } catch { /* exited meanwhile */ }
        }
      };
      let stopping: Promise<void> | null = null;
      const stop = () => (stopping ??= windows ? killProcessTree(pid) : stopGroup());
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        void stop();
      }, options.timeoutMs);
      const onAbort = () => void stop();
      signal.addEventListener("abort", onAbort, { once: true });
      try {
        if (watchdog) {
          try {
            await watchdog.add(pid);
          } catch (err) {
            await stop();
            await status;
            return { success: false, error: `Cannot supervise executor command: ${message(err)}` };
          }
        }
        const writer = child.stdin.getWriter();
        // Stopped already: no go-ahead, the shell reads end-of-file and exits before the command.
        if (!(watchdog && stopping)) {
          const input = (watchdog ? "\n" : "") + JSON.stringify(taskPayload(task));
          await writer.write(new TextEncoder().encode(input))
            .catch(() => {}); // a command that does not read stdin closes it early
        }
        await writer.close().catch(() => {});
        const { code } = await status;
        await stopping;
        // The shell is gone; whatever it left running in its group is stopped too.
        if (!windows) await stopProcessGroup(pid, graceMs);
        const out = await stdout.text(OUTPUT_WAIT_MS);
        const err = await stderr.text(OUTPUT_WAIT_MS);
        if (timedOut) {
          return {
            success: false,
            error: `Executor command timed out after ${options.timeoutMs}ms`,
          };
        }
        if (signal.aborted) return { success: false, error: "Execution aborted" };
        if (code !== 0) {
          return {
            success: false,
            error: err.trim() ? tail(err) : `Executor command exited with code ${code}`,
          };
        }
        if (out.trim() === "") return { success: true, result: null };
        try {
          return { success: true, result: JSON.parse(out) };
        } catch {
          return {
            success: false,
            error: `Executor command printed invalid JSON: ${tail(out, 200)}`,
          };
        }
      } finally {
        clearTimeout(timer);
        signal.removeEventListener("abort", onAbort);
        // A stop begun late (an abort while the output was read) is over before we return.
        await stopping;
        await watchdog?.remove(pid).catch(() => {});
      }
    },
    close: async () => {
      await watchdog?.close();
    },
  };
}

/** Context given to a library handler. */
export interface HandlerContext {
  /** Aborted when the task is cancelled, its lease is lost, or the dispatcher shuts down. */
  signal: AbortSignal;
  /** 1 on the first execution. */
  attempt: number;
}

/** A task handler: returns the result (JSON-serialisable) or throws to fail the execution. */
export type TaskHandler = (task: Task, ctx: HandlerContext) => unknown | Promise<unknown>;

/** Runs tasks with the handler registered for their type. */
export function handlerExecutor(handlers: Record<string, TaskHandler>): Executor {
  const types = Object.keys(handlers);
  return {
    target: "a registered handler",
    types,
    async execute(task, signal) {
      const handler = handlers[task.type];
      if (!handler) return { success: false, error: `No handler for task type "${task.type}"` };
      try {
        const result = await handler(task, { signal, attempt: task.attempts });
        return { success: true, result: result === undefined ? null : result };
      } catch (err) {
        return { success: false, error: message(err) };
      }
    },
  };
}
