import type { S3Store } from '../storage/s3';

/**
 * Checkpointed per-item work: the pattern behind generation shards and per-item metrics.
 * Items are processed in windows of `checkpointEvery`; each window's finished outcomes are written
 * as one part-file before the next window starts (also when part of the window failed), so a retry
 * after a crash or an error repeats at most one window. Outcomes are keyed by item id and the first
 * one recorded wins, so nothing is ever counted twice.
 */
export interface CheckpointOptions<I, O> {
  store: S3Store;
  /** Folder of part-files, ending in '/'. */
  partsPrefix: string;
  items: I[];
  idOf: (item: I) => string;
  process: (item: I) => Promise<O>;
  checkpointEvery: number;
  /** Called after every finished item and every part-file (heartbeat). */
  progress?: (done: number, total: number) => void;
}

export interface Checkpointed<O> {
  /** Outcomes by item id, for every item. */
  outcomes: Map<string, O>;
  /** Items processed by this call (0 when everything came from part-files). */
  processed: number;
}

const partName = (n: number) => `part-${String(n).padStart(5, '0')}.jsonl`;

export async function runCheckpointed<I, O>(opts: CheckpointOptions<I, O>): Promise<Checkpointed<O>> {
  const { store, partsPrefix } = opts;
  const outcomes = new Map<string, O>();
  let nextPart = 0;
  for (const key of (await store.list(partsPrefix)).filter((k) => k.endsWith('.jsonl'))) {
    nextPart = Math.max(nextPart, Number(/part-(\d+)\.jsonl$/.exec(key)?.[1] ?? -1) + 1);
    for (const line of ((await store.getText(key)) ?? '').split('\n')) {
      if (!line.trim()) continue;
      const { id, outcome } = JSON.parse(line) as { id: string; outcome: O };
      if (!outcomes.has(id)) outcomes.set(id, outcome);
    }
  }
  const todo = opts.items.filter((it) => !outcomes.has(opts.idOf(it)));
  let processed = 0;
  for (let i = 0; i < todo.length; i += opts.checkpointEvery) {
    const window = todo.slice(i, i + opts.checkpointEvery);
    const settled = await Promise.allSettled(
      window.map(async (item) => {
        const outcome = await opts.process(item);
        processed++;
        opts.progress?.(outcomes.size + processed, opts.items.length);
        return { id: opts.idOf(item), outcome };
      }),
    );
    const finished = settled.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
    if (finished.length) {
      await store.putText(
        `${partsPrefix}${partName(nextPart++)}`,
        finished.map((f) => JSON.stringify(f)).join('\n') + '\n',
        'application/x-ndjson',
      );
      for (const f of finished) outcomes.set(f.id, f.outcome);
    }
    opts.progress?.(outcomes.size, opts.items.length);
    const failure = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
    if (failure) throw failure.reason;
  }
  return { outcomes, processed };
}
