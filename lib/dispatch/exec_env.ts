import { InvalidInputError } from "../errors.ts";

/** Set by the dispatcher for each execution; `--exec-env` cannot override them. */
export const TASK_ENV = ["SEEDTASK_TASK_ID", "SEEDTASK_TASK_TYPE", "SEEDTASK_ATTEMPT"] as const;

/**
 * What a command gets from the dispatcher's environment without asking: enough to find
 * programs, a home, the locale, the time zone and a temporary directory — never a connection
 * string, password or token. On Windows, also what `cmd` and most programs need to start.
 */
const BASE_NAMES = ["PATH", "HOME", "LANG", "LANGUAGE", "TZ", "TMPDIR"];
const BASE_PATTERN = /^LC_[A-Z_]+$/;
const WINDOWS_NAMES = [
  "PATHEXT",
  "SYSTEMROOT",
  "SYSTEMDRIVE",
  "WINDIR",
  "COMSPEC",
  "TEMP",
  "TMP",
  "USERPROFILE",
];

const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * The environment of an executor command (besides SEEDTASK_TASK_ID, _TYPE and _ATTEMPT, added
 * per task): the safe base taken from `source` (a name set to undefined counts as unset),
 * plus each `pass` entry — `NAME` copies `source[NAME]`, `NAME=value` sets a value. Nothing
 * else of `source` is passed.
 *
 * @example
 * ```ts
 * executorEnv({ PATH: "/bin", PG_DSN: "postgres://u:pw@db/x", API_KEY: "k" }, ["API_KEY", "MODE=fast"]);
 * // => { PATH: "/bin", API_KEY: "k", MODE: "fast" }
 * ```
 */
export function executorEnv(
  source: Record<string, string | undefined>,
  pass: readonly string[] = [],
  os: typeof Deno.build.os = Deno.build.os,
): Record<string, string> {
  const windows = os === "windows";
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(source)) {
    if (value === undefined) continue;
    const key = windows ? name.toUpperCase() : name;
    if (
      BASE_NAMES.includes(key) || BASE_PATTERN.test(key) ||
      (windows && WINDOWS_NAMES.includes(key))
    ) env[name] = value;
  }
  for (const spec of pass) {
    const eq = spec.indexOf("=");
    const name = eq === -1 ? spec : spec.slice(0, eq);
    if (!NAME.test(name)) {
      throw new InvalidInputError(
        `Invalid --exec-env "${spec}": expected NAME or NAME=value, with a NAME of letters, ` +
          "digits and _",
        "e.g. --exec-env API_KEY or --exec-env MODE=batch",
      );
    }
    if ((TASK_ENV as readonly string[]).includes(windows ? name.toUpperCase() : name)) {
      throw new InvalidInputError(
        `Invalid --exec-env "${spec}": ${name} is set by the dispatcher for each task`,
      );
    }
    if (eq === -1) {
      const value = source[name];
      if (value === undefined) {
        throw new InvalidInputError(
          `Invalid --exec-env "${spec}": ${name} is not set in the dispatcher's environment`,
          `set it, or pass --exec-env ${name}=value`,
        );
      }
      env[name] = value;
    } else {
      env[name] = spec.slice(eq + 1);
    }
  }
  return env;
}
