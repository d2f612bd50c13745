/**
 * Coalesces concurrent identical requests into one load, and keeps its result for `ttlMs`.
 * A failed load is not cached: the next request tries again. (`/stats` and `/metrics` under
 * many clients cost one database query per TTL, not one per request.)
 */
export class SingleFlightCache<T> {
  private readonly entries = new Map<string, { promise: Promise<T>; expiresAt: number }>();

  constructor(private readonly ttlMs: number, private readonly now: () => number = Date.now) {}

  get(key: string, load: () => Promise<T>): Promise<T> {
    const hit = this.entries.get(key);
    if (hit && hit.expiresAt > this.now()) return hit.promise;
    const entry = { promise: load(), expiresAt: Number.POSITIVE_INFINITY };
    this.entries.set(key, entry);
    entry.promise.then(
      () => {
        entry.expiresAt = this.now() + this.ttlMs;
        if (this.ttlMs <= 0 && this.entries.get(key) === entry) this.entries.delete(key);
      },
      () => {
        if (this.entries.get(key) === entry) this.entries.delete(key);
      },
    );
    // Drop expired keys now and then so distinct query strings cannot grow the map forever.
    if (this.entries.size > 256) {
      const now = this.now();
      for (const [k, e] of this.entries) if (e.expiresAt <= now) this.entries.delete(k);
    }
    return entry.promise;
  }

  /** Forgets every kept answer (after a write changed what they describe). */
  clear(): void {
    this.entries.clear();
  }
}
