import { Runtime } from '@temporalio/worker';
import { readEnv } from '../common/env';
import { createWorkers, runWorkers } from './options';

/**
 * Worker process entry point.
 *   POLYGLOT_PROVIDERS   comma-separated provider ids to serve (default: local)
 *   POLYGLOT_SHARD_SLOTS shard activities per provider at once (default 8)
 *   TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, POLYGLOT_TASK_QUEUE, S3_ENDPOINT, AWS_* — see docs/operations.md.
 */
async function main(): Promise<void> {
  const env = readEnv();
  Runtime.install({ logger: new (await import('@temporalio/worker')).DefaultLogger('WARN') });
  const providers = (process.env.POLYGLOT_PROVIDERS ?? 'local')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  const { workers } = await createWorkers({
    env,
    providers,
    shardSlots: Number(process.env.POLYGLOT_SHARD_SLOTS ?? 8),
  });
  console.log(
    `polyglot worker up: temporal=${env.temporalAddress} namespace=${env.temporalNamespace} queues=${[env.taskQueue, ...providers.map((p) => `llm-${p}`)].join(',')}`,
  );
  await runWorkers(workers);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
