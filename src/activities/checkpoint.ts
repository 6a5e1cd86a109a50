import { digestOf } from '../common/hash';
import { keys } from '../storage/layout';
import type { Repair } from '../storage/integrity';
import type { S3Store } from '../storage/s3';

/**
 * Checkpointed per-item work: the pattern behind generation shards and per-item metrics.
 * Items are processed in windows of `checkpointEvery`; each window's finished outcomes are written
 * as one part-file before the next window starts (also when part of the window failed), so a retry
 * after a crash or an error repeats at most one window. Outcomes are keyed by item id and the first
 * one recorded wins, so nothing is ever counted twice.
 *
 * Each line carries `check`, the first 16 hex digits of the digest of its `{id, outcome}`: a torn or
 * corrupted line (a truncated object, a flipped byte) is told from a good one. Such a line is dropped —
 * its item is processed again, one call — and the part-file is rewritten whole with its good lines
 * (a PUT replaces the object at once: never half-written). Lines without `check` come from before
 * this scheme and are kept when they parse.
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
  /** Part-files rewritten without their damaged lines. */
  repaired: Repair[];
}

interface PartLine<O> {
  id: string;
  outcome: O;
  check?: string;
}

const lineCheck = (id: string, outcome: unknown) => digestOf({ id, outcome }).slice(0, 16);

/** A line's record, or why it cannot be trusted. */
function readLine<O>(line: string): PartLine<O> | string {
  let v: PartLine<O>;
  try {
    v = JSON.parse(line) as PartLine<O>;
  } catch {
    return 'torn or not JSON';
  }
  if (v === null || typeof v !== 'object' || typeof v.id !== 'string' || !('outcome' in v)) return 'not an outcome';
  if (v.check !== undefined && v.check !== lineCheck(v.id, v.outcome)) return 'checksum mismatch';
  return v;
}

export async function runCheckpointed<I, O>(opts: CheckpointOptions<I, O>): Promise<Checkpointed<O>> {
  const { store, partsPrefix } = opts;
  const outcomes = new Map<string, O>();
  const repaired: Repair[] = [];
  const listed = (await store.list(partsPrefix)).filter((k) => k.endsWith('.jsonl'));
  // A new part-file takes the first name nobody holds, so nothing stored is overwritten; the listing is never
  // parsed for numbers (names are built in layout.ts, from parts, and only compared).
  const taken = new Set(listed);
  let nextPart = 0;
  const newPart = () => {
    while (taken.has(keys.partFile(partsPrefix, nextPart))) nextPart++;
    const key = keys.partFile(partsPrefix, nextPart++);
    taken.add(key);
    return key;
  };
  for (const key of listed) {
    const good: string[] = [];
    const bad: string[] = [];
    const lines = ((await store.getText(key)) ?? '').split('\n');
    lines.forEach((line, i) => {
      if (!line.trim()) return;
      const r = readLine<O>(line);
      if (typeof r === 'string') {
        bad.push(`line ${i + 1}: ${r}`);
        return;
      }
      good.push(line);
      if (!outcomes.has(r.id)) outcomes.set(r.id, r.outcome);
    });
    if (bad.length) {
      // Keep the good lines, whole; the dropped items are processed again below.
      if (good.length) await store.putText(key, good.join('\n') + '\n', 'application/x-ndjson');
      else await store.delete(key);
      repaired.push({ key, reason: `part-file: dropped ${bad.join(', ')}` });
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
        newPart(),
        finished.map((f) => JSON.stringify({ ...f, check: lineCheck(f.id, f.outcome) })).join('\n') + '\n',
        'application/x-ndjson',
      );
      for (const f of finished) outcomes.set(f.id, f.outcome);
    }
    opts.progress?.(outcomes.size, opts.items.length);
    const failure = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
    if (failure) throw failure.reason;
  }
  return { outcomes, processed, repaired };
}
