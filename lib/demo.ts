/**
 * The demo's SeedCore-like workload: a realistic mix of tasks and built-in handlers that
 * succeed, fail and retry, or take their time — the seed's demo script, live.
 */
import { enqueueTask } from "./ops/enqueue_task.ts";
import type { Db } from "./db.ts";
import type { TaskHandler } from "./dispatch/executors.ts";
import { delay } from "./duration.ts";

/** A small deterministic PRNG (mulberry32) so every demo run tells the same story. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const DOMAINS = ["user_123", "user_456", "user_789", "org_acme", "org_globex", null] as const;

interface Template {
  type: string;
  weight: number;
  describe: (n: number) => string;
  params: (n: number, r: () => number) => Record<string, unknown>;
}

const TEMPLATES: Template[] = [
  {
    type: "graph_embed",
    weight: 5,
    describe: (n) => `Embed knowledge graph #${n}`,
    params: (n, r) => ({ graph_id: 1000 + n, node_count: 50 + Math.floor(r() * 950), dims: 1024 }),
  },
  {
    type: "graph_rag_query",
    weight: 4,
    describe: (n) => `Answer question #${n} with graph RAG`,
    params: (n) => ({ query: `What changed in project ${n % 7}?`, k: 8 }),
  },
  {
    type: "fact_search",
    weight: 3,
    describe: (n) => `Search facts for entity ${n}`,
    params: (n) => ({ entity: `entity_${n}`, limit: 20 }),
  },
  {
    type: "fact_ingest",
    weight: 2,
    describe: (n) => `Ingest source document ${n}`,
    params: (n) => ({ source: `s3://seedcore-demo/docs/${n}.md`, malformed: n % 3 !== 0 }),
  },
  {
    type: "graph_sync",
    weight: 1,
    describe: (n) => `Synchronise graph shard ${n}`,
    params: (n) => ({ shard: n % 4, full: true }),
  },
];

/** Enqueues `count` demo tasks across several domains, with params. Returns their ids. */
export async function enqueueDemoTasks(db: Db, count: number, seed = 7): Promise<string[]> {
  const r = seededRandom(seed);
  const total = TEMPLATES.reduce((n, t) => n + t.weight, 0);
  const ids: string[] = [];
  for (let n = 1; n <= count; n++) {
    let pick = r() * total;
    // The first tasks are one of each type, so every story (retry, failure, slow) is told.
    const tpl = n <= TEMPLATES.length
      ? TEMPLATES[n - 1]!
      : TEMPLATES.find((t) => (pick -= t.weight) < 0) ?? TEMPLATES[0]!;
    const task = await enqueueTask(db, {
      type: tpl.type,
      params: tpl.params(n, r),
      description: tpl.describe(n),
      domain: DOMAINS[Math.floor(r() * DOMAINS.length)] ?? undefined,
      driftScore: Math.round(r() * 1000) / 1000,
    });
    ids.push(task.id);
  }
  return ids;
}

/** Built-in handlers: most succeed quickly, fact_search is flaky, malformed ingests always fail, graph_sync is slow. */
export function demoHandlers(): Record<string, TaskHandler> {
  return {
    graph_embed: async (task, { signal }) => {
      const p = task.params as { node_count: number; dims: number };
      await delay(80 + (p.node_count % 200), signal);
      return { embedded_nodes: p.node_count, dims: p.dims, index: "hnsw" };
    },
    graph_rag_query: async (task, { signal }) => {
      await delay(120, signal);
      const q = (task.params as { query: string }).query;
      return { answer: `Three services changed (${q.length} chars asked)`, citations: 3 };
    },
    fact_search: async (task, { signal, attempt }) => {
      await delay(60, signal);
      // The fact store times out on a first attempt every other task: retried, then fine.
      if (attempt === 1 && Number(task.description?.match(/\d+/)?.[0] ?? 0) % 2 === 0) {
        throw new Error("fact store timeout after 60ms (upstream 504)");
      }
      return { facts: 12, entity: (task.params as { entity: string }).entity };
    },
    fact_ingest: async (task, { signal }) => {
      await delay(90, signal);
      if ((task.params as { malformed: boolean }).malformed) {
        throw new Error("source document is malformed: front matter missing 'title'");
      }
      return { chunks: 17 };
    },
    graph_sync: async (_task, { signal }) => {
      await delay(2500, signal); // the slow one
      return { synced_edges: 48213 };
    },
  };
}
