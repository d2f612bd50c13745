/** Retry backoff policy of the dispatcher. */
export interface BackoffPolicy {
  /** Delay after the first failed attempt. Default 10s. */
  baseMs: number;
  /** Upper bound before jitter. Default 300s. */
  maxMs: number;
  /** Random extra delay, as a fraction of the delay: 0.1 adds up to 10%. Default 0.1. */
  jitter: number;
}

/** 10s, doubling up to 300s, plus up to 10% jitter. */
export const DEFAULT_BACKOFF: BackoffPolicy = { baseMs: 10_000, maxMs: 300_000, jitter: 0.1 };

/** Executions a task gets before it fails for good, unless told otherwise. */
export const DEFAULT_MAX_ATTEMPTS = 3;

/**
 * `min(base * 2^(attempts-1), max)` plus jitter, where `attempts` counts executions started
 * (1 after the first failure). Jitter spreads retries of tasks that failed together.
 */
export function backoffDelay(
  attempts: number,
  policy: BackoffPolicy = DEFAULT_BACKOFF,
  random: () => number = Math.random,
): number {
  const exponent = Math.min(Math.max(attempts - 1, 0), 30);
  const delay = Math.min(policy.baseMs * 2 ** exponent, policy.maxMs);
  return Math.round(delay + delay * policy.jitter * random());
}
