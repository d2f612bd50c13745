/**
 * This machine's host name, read once: null when the process may not read it (Deno without
 * `--allow-sys`). Callers choose their own stand-in.
 *
 * @module
 */

let cached: string | null | undefined;

/** The host name, or null without `--allow-sys`. */
export function hostName(): string | null {
  if (cached === undefined) {
    try {
      cached = Deno.hostname();
    } catch {
      cached = null;
    }
  }
  return cached;
}
