import type { Task } from "./task.ts";

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
  execute(task: Task, signal: AbortSignal): Promise<ExecutionResult>;
}

/** The JSON document an executor receives (DESIGN §8). */
export interface TaskPayload {
  task_id: string;
  type: string;
  params: unknown;
  description: string | null;
  domain: string | null;
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
      const timeout = AbortSignal.timeout(options.timeoutMs);
      try {
        const res = await fetch(url, {
          method: "POST",
          headers: { "content-type": "application/json", "x-seedtask-task-id": task.id },
          body: JSON.stringify(taskPayload(task)),
          signal: AbortSignal.any([signal, timeout]),
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
        if (timeout.aborted) {
          return { success: false, error: `Executor timed out after ${options.timeoutMs}ms` };
        }
        if (signal.aborted) return { success: false, error: "Execution aborted" };
        return { success: false, error: `Executor request failed: ${message(err)}` };
      }
    },
  };
}

/**
 * Runs `command` through the shell for every task: the payload JSON on stdin, the result JSON
 * on stdout (empty stdout is a null result). A non-zero exit is a failure with stderr as the
 * error. The task id, type and attempt are also in SEEDTASK_TASK_ID, SEEDTASK_TASK_TYPE and
 * SEEDTASK_ATTEMPT. The process is killed on timeout or abort.
 */
export function commandExecutor(command: string, options: { timeoutMs: number }): Executor {
  const shell = Deno.build.os === "windows" ? ["cmd", "/d", "/s", "/c"] : ["sh", "-c"];
  return {
    target: `command \`${command.length > 60 ? command.slice(0, 59) + "…" : command}\``,
    async execute(task, signal) {
      let child: Deno.ChildProcess;
      try {
        child = new Deno.Command(shell[0]!, {
          args: [...shell.slice(1), command],
          stdin: "piped",
          stdout: "piped",
          stderr: "piped",
          env: {
            SEEDTASK_TASK_ID: task.id,
            SEEDTASK_TASK_TYPE: task.type,
            SEEDTASK_ATTEMPT: String(task.attempts),
          },
        }).spawn();
      } catch (err) {
        return { success: false, error: `Cannot start executor command: ${message(err)}` };
      }
      let timedOut = false;
      const kill = () => {
        try {
          child.kill("SIGKILL");
        } catch { /* already exited */ }
      };
      const timer = setTimeout(() => {
        timedOut = true;
        kill();
      }, options.timeoutMs);
      signal.addEventListener("abort", kill, { once: true });
      try {
        const writer = child.stdin.getWriter();
        await writer.write(new TextEncoder().encode(JSON.stringify(taskPayload(task))))
          .catch(() => {}); // a command that does not read stdin closes it early
        await writer.close().catch(() => {});
        const out = await child.output();
        const dec = new TextDecoder();
        const stdout = dec.decode(out.stdout);
        const stderr = dec.decode(out.stderr);
        if (timedOut) {
          return {
            success: false,
            error: `Executor command timed out after ${options.timeoutMs}ms`,
          };
        }
        if (signal.aborted) return { success: false, error: "Execution aborted" };
        if (out.code !== 0) {
          return {
            success: false,
            error: stderr.trim() ? tail(stderr) : `Executor command exited with code ${out.code}`,
          };
        }
        if (stdout.trim() === "") return { success: true, result: null };
        try {
          return { success: true, result: JSON.parse(stdout) };
        } catch {
          return {
            success: false,
            error: `Executor command printed invalid JSON: ${tail(stdout, 200)}`,
          };
        }
      } finally {
        clearTimeout(timer);
        signal.removeEventListener("abort", kill);
      }
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
