/**
 * Kubernetes job-watching benchmark: N concurrent `jobWorkflow`s against the local control plane
 * (scripts/kube-up.sh: real API server, kwok kubelets), one in-process Worker and ONE shared
 * KubernetesJobRunner. The Jobs are pinned to a node pool that does not exist yet, so all N are
 * watched at once for `--hold-s`; then the pool appears, kwok completes the pods and the watchers
 * read the result.json files the bench wrote up front. Reports API requests per job-minute, wall
 * time, worker RSS, and the API server's WATCH count (no watch per job). Usage:
 *   node lib/bench/k8s-jobs.js [--jobs 200] [--hold-s 30] [--poll-ms 2000]
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { CoreV1Api } from '@kubernetes/client-node';
import { Worker } from '@temporalio/worker';
import { createActivities } from '../src/activities';
import { readEnv } from '../src/common/env';
import { KubernetesJobRunner, loadKubeConfig } from '../src/jobs/kubernetes';
import type { JobHandle, JobRunner, JobStatus } from '../src/jobs/runner';
import type { JobSpecInput } from '../src/jobs/spec';
import { defaultDeps } from '../src/workers/options';
import { sharedBundle, storeFor, uniqueName } from '../test/support/fixtures';
import { KUBECTL, getStack, startKube, startStack, stopStack } from '../test/support/stack';

function arg(name: string, dflt: number): number {
  const i = process.argv.indexOf(name);
  return i >= 0 ? Number(process.argv[i + 1]) : dflt;
}

/** The runner, counting how long each job is watched (submit → terminal status). */
class Timed implements JobRunner {
  readonly kind = 'kubernetes' as const;
  readonly started = new Map<string, number>();
  readonly ended = new Map<string, number>();
  constructor(readonly inner: KubernetesJobRunner) {}
  async submit(spec: Parameters<JobRunner['submit']>[0]): Promise<JobHandle> {
    const h = await this.inner.submit(spec);
    if (!this.started.has(h.name)) this.started.set(h.name, Date.now());
    return h;
  }
  async status(h: JobHandle): Promise<JobStatus> {
    const s = await this.inner.status(h);
    if ((s.phase === 'succeeded' || s.phase === 'failed') && !this.ended.has(h.name))
      this.ended.set(h.name, Date.now());
    return s;
  }
  cancel(h: JobHandle) {
    return this.inner.cancel(h);
  }
  logs(h: JobHandle) {
    return this.inner.logs(h);
  }
  watching(): number {
    return [...this.started.keys()].filter((n) => !this.ended.has(n)).length;
  }
}

function watchCount(kubeconfig: string): number {
  const metrics = execFileSync(KUBECTL, ['--kubeconfig', kubeconfig, 'get', '--raw', '/metrics'], {
    encoding: 'utf8',
    maxBuffer: 256 << 20,
  });
  return metrics
    .split('\n')
    .filter((l) => l.startsWith('apiserver_longrunning_requests{') && l.includes('verb="WATCH"'))
    .reduce((sum, l) => sum + Number(l.split(' ').pop()), 0);
}

async function main() {
  const jobs = arg('--jobs', 200);
  const holdS = arg('--hold-s', 30);
  const pollMs = arg('--poll-ms', 2000);
  await startStack();
  const kubeconfig = await startKube();
  if (!kubeconfig) throw new Error('Kubernetes binaries missing: run scripts/kube-build.sh');
  const kc = loadKubeConfig(kubeconfig);
  const core = kc.makeApiClient(CoreV1Api);
  const ns = uniqueName('bench').toLowerCase();
  await core.createNamespace({ body: { metadata: { name: ns } } });
  for (let i = 0; i < 100; i++) {
    const ok = await core.readNamespacedServiceAccount({ name: 'default', namespace: ns }).then(
      () => true,
      () => false,
    );
    if (ok) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  const runner = new Timed(new KubernetesJobRunner(kc, { namespace: ns, pollMs }));
  const bucket = uniqueName('k8sbench');
  const store = storeFor(bucket);
  await store.ensureBucket();
  const pool = { 'polyglot.bench/pool': ns };
  const specs: JobSpecInput[] = [];
  for (let i = 0; i < jobs; i++) {
    const cellId = `sweep/bench/t=a/l=de/s=olmo/train-${i}`;
    const prefix = `students/bench/${i}/`;
    specs.push({
      cellId: `${cellId}-${ns}`,
      sweepId: 'bench',
      image: 'example.invalid/trainer:never-pulled',
      command: ['python', '-m', 'polyglot_jobs.train'],
      resources: { cpu: '100m', memory: '128Mi', gpus: 0, shm: '64Mi' },
      nodeSelector: pool,
      outputUri: `s3://${bucket}/${prefix}`,
    });
    await store.putText(`${prefix}result.json`, JSON.stringify({ status: 'succeeded', metrics: { i } }));
  }
  // One in-process Worker with the runner. Its activity slots are raised to N: the SDK default
  // (100, which the worker process uses today) would watch at most 100 jobs at a time.
  const taskQueue = uniqueName('tq');
  const stack = getStack();
  const env = { ...readEnv(), temporalAddress: stack.temporalAddress, s3Endpoint: stack.s3Endpoint, taskQueue };
  const worker = await Worker.create({
    connection: stack.env.nativeConnection,
    taskQueue,
    workflowBundle: await sharedBundle(),
    activities: createActivities({ ...defaultDeps(env), runners: { kubernetes: runner } }),
    maxConcurrentActivityTaskExecutions: jobs + 10,
  });
  const running = worker.run();
  const watchesBefore = watchCount(kubeconfig);
  const t0 = Date.now();
  const client = getStack().env.client;
  const handles = await Promise.all(
    specs.map((spec) =>
      client.workflow.start('jobWorkflow', {
        taskQueue,
        workflowId: uniqueName('benchjob'),
        args: [{ runner: 'kubernetes', spec, pollMs, heartbeatSeconds: 60 }],
      }),
    ),
  );
  let peak = 0;
  const sampler = setInterval(() => (peak = Math.max(peak, runner.watching())), 100);
  while (runner.started.size < jobs) await new Promise((r) => setTimeout(r, 200));
  const allWatchedAt = Date.now();
  const reqAtAll = runner.inner.requests;
  await new Promise((r) => setTimeout(r, holdS * 1000));
  const holdReq = runner.inner.requests - reqAtAll;
  const holdMin = (Date.now() - allWatchedAt) / 60_000;
  const watchesDuring = watchCount(kubeconfig);
  // Release: a node pool large enough for all pods (110 pods a node).
  const nodes = Math.ceil(jobs / 100);
  for (let i = 0; i < nodes; i++) {
    await core.createNode({
      body: {
        metadata: {
          name: `${ns}-${i}`.slice(0, 63),
          annotations: { 'kwok.x-k8s.io/node': 'fake' },
          labels: { type: 'kwok', ...pool },
        },
        status: {
          allocatable: { cpu: '64', memory: '512Gi', pods: '110' },
          capacity: { cpu: '64', memory: '512Gi', pods: '110' },
        },
      },
    });
  }
  const tRelease = Date.now();
  const results = await Promise.all(handles.map((h) => h.result() as Promise<{ result: { status: string } }>));
  const wall = Date.now() - t0;
  clearInterval(sampler);
  const ok = results.filter((r) => r.result.status === 'succeeded').length;
  const jobMinutes = [...runner.started].reduce(
    (sum, [n, s]) => sum + ((runner.ended.get(n) ?? Date.now()) - s) / 60_000,
    0,
  );
  const total = runner.inner.requests;
  const rss = Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'))?.[1] ?? 0) / 1024;
  console.log(
    JSON.stringify(
      {
        jobs,
        succeeded: ok,
        peakConcurrentWatched: peak,
        pollMs,
        wallSeconds: wall / 1000,
        releaseToAllDoneSeconds: (Date.now() - tRelease) / 1000,
        apiRequestsTotal: total,
        jobMinutesWatched: Number(jobMinutes.toFixed(2)),
        apiRequestsPerJobMinute: Number((total / jobMinutes).toFixed(3)),
        hold: {
          seconds: Number((holdMin * 60).toFixed(1)),
          requests: holdReq,
          requestsPerSecond: Number((holdReq / (holdMin * 60)).toFixed(2)),
          requestsPerJobMinute: Number((holdReq / (holdMin * jobs)).toFixed(4)),
        },
        perJobFixedRequests: 'submit 1 + logs (1 list + 1 per pod)',
        apiserverWatches: { before: watchesBefore, whileWatchingAllJobs: watchesDuring },
        workerPeakRssMb: Math.round(rss),
      },
      null,
      2,
    ),
  );
  worker.shutdown();
  await running;
  await core.deleteNamespace({ name: ns }).catch(() => undefined);
  for (let i = 0; i < nodes; i++) await core.deleteNode({ name: `${ns}-${i}`.slice(0, 63) }).catch(() => undefined);
  await stopStack();
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
