import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Worker } from '@temporalio/worker';
import type { WorkflowBundle } from '@temporalio/worker';
import type { ActivityDeps } from '../../src/activities';
import { readEnv } from '../../src/common/env';
import { importSeedPool, readSeedFile } from '../../src/seeds/pool';
import type { SweepSpecInput } from '../../src/spec/sweep';
import { StoreRegistry, makeS3Client, type S3Store } from '../../src/storage/s3';
import { createWorkers, workflowBundle } from '../../src/workers/options';
import { ROOT, getStack } from './stack';

let counter = 0;
/** A unique name per test: bucket, task queue and sweep id never collide between tests. */
export function uniqueName(stem: string): string {
  return `${stem}-${process.pid}-${Date.now().toString(36)}-${counter++}`;
}

export function storeFor(bucket: string): S3Store {
  return new StoreRegistry(makeS3Client(getStack().s3Endpoint, 'us-east-1')).for(bucket);
}

/** Import the shipped demo seed set into a fresh bucket; returns the seed pool URI. */
export async function importDemoSeeds(bucket: string, prefix = 'polyglot', into?: S3Store): Promise<string> {
  const file = path.join(ROOT, 'seeds/demo.jsonl');
  const rows = await readSeedFile(file, readFileSync(file));
  const store = into ?? storeFor(bucket);
  await store.ensureBucket();
  return (await importSeedPool(store, prefix, rows, 'seeds/demo.jsonl')).uri;
}

export function smallSpec(opts: {
  bucket: string;
  seedPool: string;
  llmUrl: string;
  sweepId: string;
  counts?: number;
  providerId?: string;
}): SweepSpecInput {
  const n = opts.counts ?? 4;
  const providerId = opts.providerId ?? 'fake';
  return {
    name: 'test sweep',
    sweepId: opts.sweepId,
    storage: { bucket: opts.bucket, prefix: 'polyglot' },
    providers: [{ id: providerId, baseUrl: opts.llmUrl, concurrency: 4 }],
    teachers: [
      {
        id: 'teacher-a',
        provider: providerId,
        model: 'fake-model',
        sampling: { temperature: 0.8, topP: 0.9, maxTokens: 128 },
      },
      {
        id: 'teacher-b',
        provider: providerId,
        model: 'fake-model',
        sampling: { temperature: 0.3, topP: 0.9, maxTokens: 128 },
      },
    ],
    languages: ['de', 'es'],
    strategies: { generate: { count: n }, translate: { count: n }, respond: { count: n } },
    seedPool: opts.seedPool,
    shardSize: 2,
    checkpointEvery: 1,
    timeouts: { heartbeatSeconds: 5, shardMinutes: 5 },
    retry: { maximumAttempts: 10, initialIntervalSeconds: 0.2, maximumIntervalSeconds: 2 },
  };
}

/** Every intrinsic metric on the fake server's `fake-model` behind one provider (the chaos and repair tests). */
export function fakeMetrics(
  providerId: string,
  subsampleSize: number,
  checkpointEvery?: number,
): SweepSpecInput['metrics'] {
  const on = { provider: providerId, model: 'fake-model' };
  return {
    subsampleSize,
    embeddings: on,
    judge: { ...on, maxTokens: 64 },
    perplexity: on,
    tokenizer: on,
    ...(checkpointEvery ? { checkpointEvery } : {}),
  };
}

let bundle: Promise<WorkflowBundle> | undefined;
export function sharedBundle(): Promise<WorkflowBundle> {
  bundle ??= workflowBundle();
  return bundle;
}

/** Start in-process workers on a unique task queue; returns the queue and a stopper. */
export async function startWorkers(providers: string[], taskQueue = uniqueName('tq'), deps?: Partial<ActivityDeps>) {
  const stack = getStack();
  const env = { ...readEnv(), temporalAddress: stack.temporalAddress, s3Endpoint: stack.s3Endpoint, taskQueue };
  const { workers } = await createWorkers({
    env,
    providers,
    workflowBundle: await sharedBundle(),
    connection: stack.env.nativeConnection,
    deps,
  });
  const running = Promise.all(workers.map((w: Worker) => w.run()));
  return {
    taskQueue,
    async stop() {
      for (const w of workers) if (w.getState() === 'RUNNING') w.shutdown();
      await running;
    },
  };
}

/** The command of the tests' fake job (test/support/fake-job.ts): a real process honouring the job contract. */
export const FAKE_JOB_COMMAND = [process.execPath, path.join(ROOT, 'lib/test/support/fake-job.js')];
