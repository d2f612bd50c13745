/**
 * Stopping everything an executor command started — its process group on POSIX, its process
 * tree on Windows — and keeping that promise when the dispatcher itself is killed.
 *
 * Why a watchdog process rather than a parent-death signal: PR_SET_PDEATHSIG is Linux-only,
 * cannot be set from Deno before exec, and fires when the *thread* that forked the child exits
 * (Deno spawns from runtime threads that may come and go), not when the dispatcher dies. A
 * small `sh` per executor that reads the registered groups from a pipe works the same on
 * Linux and macOS: when the dispatcher dies, even by SIGKILL, the kernel closes its end of the
 * pipe, the watchdog reads end-of-file and stops every group still registered.
 */

import { delay } from "../duration.ts";

/** After SIGKILL, how long to wait for the group to be gone (zombies to be reaped). */
const KILL_WAIT_MS = 2000;

/** Signals every process of group `pgid`; false when the group no longer exists. */
function signalGroup(pgid: number, signal: Deno.Signal): boolean {
  try {
    Deno.kill(-pgid, signal);
    return true;
  } catch {
    return false; // ESRCH: empty group (EPERM: nothing in it we may signal)
  }
}

/**
 * Waits up to `ms` for group `pgid` to be empty. The probe is SIGCONT, which systemd also sends
 * after SIGTERM: a stopped process can then act on the TERM, a running one ignores it, and the
 * answer (ESRCH or not) says whether any process of the group is left.
 */
async function groupGone(pgid: number, ms: number): Promise<boolean> {
  const deadline = performance.now() + ms;
  let pause = 5;
  while (signalGroup(pgid, "SIGCONT")) {
    const left = deadline - performance.now();
    if (left <= 0) return false;
    await delay(Math.min(pause, left));
    pause = Math.min(pause * 2, 100);
  }
  return true;
}

/**
 * Stops process group `pgid`: SIGTERM (and SIGCONT) to every process in it, then SIGKILL to
 * what is left after `graceMs`. Resolves once the group is empty, or KILL_WAIT_MS after the
 * KILL (a process in uninterruptible sleep cannot be hurried). Returns at once for an empty
 * group.
 */
export async function stopProcessGroup(pgid: number, graceMs: number): Promise<void> {
  if (!signalGroup(pgid, "SIGTERM")) return;
  if (await groupGone(pgid, graceMs)) return;
  signalGroup(pgid, "SIGKILL");
  await groupGone(pgid, KILL_WAIT_MS);
}

/** Kills process `pid` and all its descendants (Windows: no TERM exists for console programs). */
export async function killProcessTree(pid: number): Promise<void> {
  try {
    await new Deno.Command("taskkill", {
      args: ["/PID", String(pid), "/T", "/F"],
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).output();
  } catch { /* already gone */ }
}

/**
 * The watchdog's script. Lines "+PGID" register a group, "-PGID" forget it; at end of input
 * (the dispatcher is gone) every registered group gets TERM, up to $1 tenths of a second to go,
 * then KILL. It ignores the terminal's and the service manager's signals so that only the end
 * of its input (or SIGKILL) ends it.
 */
const WATCHDOG = `trap '' INT TERM HUP QUIT PIPE
groups=' '
while IFS= read -r line; do
  case $line in
    +*) groups="$groups\${line#+} " ;;
    -*) id=\${line#-}
        case $groups in *" $id "*) groups="\${groups%% $id *} \${groups#* $id }" ;; esac ;;
  esac
done
alive=
for g in $groups; do kill -s TERM -- "-$g" 2>/dev/null && alive="$alive $g"; done
n=$1
while [ -n "$alive" ] && [ "$n" -gt 0 ]; do
  sleep 0.1
  left=
  for g in $alive; do kill -s CONT -- "-$g" 2>/dev/null && left="$left $g"; done
  alive=$left
  n=$((n - 1))
done
for g in $alive; do kill -s KILL -- "-$g" 2>/dev/null; done
`;

/**
 * One watchdog process per executor: `add()` a command's process group before the command
 * runs, `remove()` it once the group is empty. If the dispatcher dies, the watchdog stops what
 * is still registered (TERM, `graceMs`, KILL). POSIX only.
 */
export class ProcessWatchdog {
  #child: Deno.ChildProcess | null = null;
  #writer: WritableStreamDefaultWriter<Uint8Array> | null = null;
  readonly #groups = new Set<number>();
  #queue: Promise<void> = Promise.resolve();
  #closed = false;

  constructor(private readonly graceMs: number) {}

  /** Registers group `pgid`; resolves once the record is in the watchdog's pipe. */
  add(pgid: number): Promise<void> {
    this.#groups.add(pgid);
    return this.#send(`+${pgid}\n`);
  }

  /** Forgets group `pgid` (it is empty). */
  remove(pgid: number): Promise<void> {
    this.#groups.delete(pgid);
    return this.#send(`-${pgid}\n`);
  }

  /** Ends the watchdog (it stops whatever is still registered) and waits for it. */
  async close(): Promise<void> {
    this.#closed = true;
    await this.#queue;
    const child = this.#child;
    const writer = this.#writer;
    this.#child = this.#writer = null;
    await writer?.close().catch(() => {});
    await child?.status.catch(() => {});
  }

  #send(line: string): Promise<void> {
    const next = this.#queue.then(async () => {
      if (this.#closed) throw new Error("The process watchdog is closed");
      if (this.#writer) {
        try {
          await this.#writer.write(new TextEncoder().encode(line));
          return;
        } catch {
          this.#discard(); // it died (killed by someone): a new one takes over every group
        }
      }
      await this.#start();
    });
    this.#queue = next.catch(() => {});
    return next;
  }

  /** Starts a watchdog and hands it every group registered now. */
  async #start(): Promise<void> {
    const child = new Deno.Command("sh", {
      args: ["-c", WATCHDOG, "seedtask-watchdog", String(Math.ceil(this.graceMs / 100))],
      stdin: "piped",
      stdout: "null",
      stderr: "null",
      clearEnv: true,
      env: { PATH: "/usr/bin:/bin" },
      // Its own session: a Ctrl-C or a kill of the dispatcher's process group does not reach it.
      detached: true,
    }).spawn();
    child.unref(); // it must not keep the dispatcher alive; the dispatcher's exit ends it
    const writer = child.stdin.getWriter();
    this.#child = child;
    this.#writer = writer;
    const all = [...this.#groups].map((g) => `+${g}\n`).join("");
    if (all) await writer.write(new TextEncoder().encode(all));
  }

  #discard(): void {
    this.#writer?.releaseLock();
    this.#child = this.#writer = null;
  }
}
