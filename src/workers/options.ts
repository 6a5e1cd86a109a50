import { NativeConnection, Worker, bundleWorkflowCode, type WorkflowBundle } from '@temporalio/worker';
import { createActivities, type ActivityDeps } from '../activities';
import type { DataConverter } from '@temporalio/common';
import { dataConverterFromEnv } from '../common/codec';
import { llmTaskQueue, type RuntimeEnv } from '../common/env';
import { LimiterRegistry } from '../llm/limiter';
import path from 'node:path';
import { KubernetesJobRunner, loadKubeConfig } from '../jobs/kubernetes';
import { metricActivities, type MetricActivity } from '../metrics/registry';
import { LocalJobRunner } from '../jobs/local';
import { readTrustPolicy } from '../common/policy';
import { StoreRegistry, makeS3Client } from '../storage/s3';

/**
 * Worker construction, shared by the worker process, the tests and the benchmarks.
 * One worker polls the main queue (workflows and light activities); one more per inference
 * provider polls `llm-<provider>`, so each provider's concurrency is bounded separately.
 */
export interface WorkerSetOptions {
  env: RuntimeEnv;
  /** Providers whose generation queues this process serves. */
  providers: string[];
  /** Shard activities per provider queue at once. Default 8. */
  shardSlots?: number;
  /** Task-queue-wide dispatch limit per provider queue (activities/second, enforced by the server). */
  maxShardsPerSecond?: number;
  /** Prebuilt bundle (tests build it once). */
  workflowBundle?: WorkflowBundle;
  deps?: Partial<ActivityDeps>;
  connection?: NativeConnection;
  /** Payload codec (encryption); default from POLYGLOT_CODEC_KEY (src/common/codec.ts), none if unset. */
  dataConverter?: DataConverter;
}

let cachedBundle: Promise<WorkflowBundle> | undefined;
export function workflowBundle(): Promise<WorkflowBundle> {
  cachedBundle ??= bundleWorkflowCode({ workflowsPath: require.resolve('../workflows'), logger: quietLogger });
  return cachedBundle;
}

const quietLogger = {
  log: () => undefined,
  trace: () => undefined,
  debug: () => undefined,
  info: () => undefined,
  warn: (m: string) => console.warn(m),
  error: (m: string) => console.error(m),
};

export function defaultDeps(env: RuntimeEnv): ActivityDeps {
  // Read once at start: a malformed allow-list stops the worker here, not a sweep later.
  const policy = readTrustPolicy(process.env);
  const runners: NonNullable<ActivityDeps['runners']> = {
    local: new LocalJobRunner(
      process.env.POLYGLOT_JOBS_DIR ?? path.resolve('.data/jobs'),
      process.env,
      (process.env.POLYGLOT_LOCAL_JOB_PATH ?? '').split(path.delimiter).filter(Boolean),
      Math.max(1, Number(process.env.POLYGLOT_LOCAL_JOB_SLOTS ?? 4) || 4),
      policy.localSecrets,
    ),
  };
  // The Kubernetes runner when a cluster is configured (in-cluster service account or a kubeconfig).
  const kubeconfig = process.env.POLYGLOT_KUBECONFIG ?? process.env.KUBECONFIG;
  if (kubeconfig || process.env.KUBERNETES_SERVICE_HOST) {
    runners.kubernetes = new KubernetesJobRunner(loadKubeConfig(kubeconfig), {
      namespace: process.env.POLYGLOT_K8S_NAMESPACE ?? 'polyglot',
      pollMs: Number(process.env.POLYGLOT_K8S_POLL_MS ?? 2000),
    });
  }
  return {
    stores: new StoreRegistry(makeS3Client(env.s3Endpoint, env.s3Region)),
    limiters: new LimiterRegistry(),
    env: process.env,
    policy,
    runners,
  };
}

export async function createWorkers(
  opts: WorkerSetOptions,
): Promise<{ workers: Worker[]; connection: NativeConnection }> {
  const connection = opts.connection ?? (await NativeConnection.connect({ address: opts.env.temporalAddress }));
  const deps = { ...defaultDeps(opts.env), ...opts.deps };
  const activities = createActivities(deps);
  const bundle = opts.workflowBundle ?? (await workflowBundle());
  // Every worker decodes what it is handed: the LLM queues' activities get payloads too.
  const dataConverter = opts.dataConverter ?? dataConverterFromEnv(process.env);
  const main = await Worker.create({
    connection,
    dataConverter,
    namespace: opts.env.temporalNamespace,
    taskQueue: opts.env.taskQueue,
    workflowBundle: bundle,
    activities,
    // A killed worker's sticky workflow tasks move to another worker after this long.
    stickyQueueScheduleToStartTimeout: '3s',
    // Job watchers sleep between status polls most of the time: a worker can follow hundreds at once.
    maxConcurrentActivityTaskExecutions: Number(process.env.POLYGLOT_ACTIVITY_SLOTS ?? 500),
  });
  const llm = await Promise.all(
    opts.providers.map((p) =>
      Worker.create({
        connection,
        dataConverter,
        namespace: opts.env.temporalNamespace,
        taskQueue: llmTaskQueue(p),
        // Everything that calls a model runs here, under the provider's limits.
        activities: {
          generateShard: activities.generateShard,
          ...Object.fromEntries(metricActivities('provider').map((a) => [a, activities[a as MetricActivity]])),
        },
        maxConcurrentActivityTaskExecutions: opts.shardSlots ?? 8,
        ...(opts.maxShardsPerSecond ? { maxTaskQueueActivitiesPerSecond: opts.maxShardsPerSecond } : {}),
      }),
    ),
  );
  return { workers: [main, ...llm], connection };
}

/** Run workers until one stops (e.g. on SIGTERM, which the SDK turns into a graceful shutdown). */
export async function runWorkers(workers: Worker[]): Promise<void> {
  await Promise.all(workers.map((w) => w.run()));
}
