/**
 * Panels degrade alone: each runs its own shared computation (the API's single-flight cache,
 * through the database gate, under the statement timeout), and one that fails keeps showing
 * the last data it had, saying so, while the rest of the page renders normally.
 */
import { SeedtaskError } from "../../lib/errors.ts";
import { ShedError } from "../db_gate.ts";

/** A panel's data, or why it has none now (and the last data it had, if any). */
export type PanelResult<T> =
  | { ok: true; value: T; at: Date }
  | { ok: false; error: string; value?: T; at?: Date };

/** What a person is told about a failed computation: never a host, a table or SQL. */
export function panelMessage(err: unknown): string {
  if (err instanceof ShedError) return err.message;
  const state = (err as { sqlState?: string }).sqlState;
  if (state === "57014") return "The query ran past the statement timeout";
  if (err instanceof SeedtaskError) return err.httpError().message;
  return "Internal error";
}

/** Keeps the last good value of each panel key (a bounded number of keys). */
export class Panels {
  private readonly lastGood = new Map<string, { value: unknown; at: Date }>();

  constructor(
    private readonly maxKeys = 200,
    private readonly onError?: (err: unknown) => void,
  ) {}

  /**
   * Runs `load` (a shared computation: the caller goes through the single-flight cache) and
   * remembers its value under `key`; on failure, answers with the last value remembered.
   */
  async load<T>(key: string, load: () => Promise<T>): Promise<PanelResult<T>> {
    try {
      const value = await load();
      const at = new Date();
      this.lastGood.delete(key); // re-inserted last: the map's order is recency
      this.lastGood.set(key, { value, at });
      if (this.lastGood.size > this.maxKeys) {
        this.lastGood.delete(this.lastGood.keys().next().value!);
      }
      return { ok: true, value, at };
    } catch (err) {
      this.onError?.(err);
      const last = this.lastGood.get(key);
      return last
        ? { ok: false, error: panelMessage(err), value: last.value as T, at: last.at }
        : { ok: false, error: panelMessage(err) };
    }
  }
}
