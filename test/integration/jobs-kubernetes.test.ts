import assert from 'node:assert/strict';
import { execFileSync, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import {
  ApiException,
  AppsV1Api,
  BatchV1Api,
  CoreV1Api,
  KubeConfig,
  type V1Job,
  type V1Node,
} from '@kubernetes/client-node';
import { WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import { MIN_DEADLINE_SECONDS } from '../../src/common/job-template';
import { KubernetesJobRunner, loadKubeConfig } from '../../src/jobs/kubernetes';
import { LABELS, renderJob } from '../../src/jobs/manifest';
import { JobSpecSchema, labelValue, type JobSpecInput } from '../../src/jobs/spec';
import { FAKE_JOB_COMMAND, storeFor, uniqueName } from '../support/fixtures';
import { GPU_TRAIN_SPEC } from '../support/job-specs';
import { createNamespace } from '../support/kube';
import { POD_EXEC_LABEL, PodExecutor } from '../support/pod-executor';
import { killHard, spawnWorker, until } from '../support/processes';
import { KUBECTL, ROOT, getStack, startKube } from '../support/stack';

/** kwok's container-failure stage (scripts/kwok-stages.yaml): pods with this label fail with the annotated exit code. */
const FAIL_STAGE = 'pod-container-running-failed.stage.kwok.x-k8s.io';

/**
 * The job watcher with the Kubernetes runner against a real API server, controller-manager (Job
 * controller, garbage collector) and scheduler; kwok plays the kubelets. Pods run no code, so the test
 * writes `result.json` itself, as the pod would. One namespace per test.
 */
describe('GPU job watcher on Kubernetes (kwok control plane)', function () {
  this.timeout(60_000);
  let kubeconfig: string;
  let kc: KubeConfig;
  let batch: BatchV1Api;
  let core: CoreV1Api;
  let ns: string;
  let bucket: string;

  before(async function () {
    this.timeout(120_000);
    const p = await startKube();
    if (!p) {
      this.skip(); // .tools/kube/bin missing: scripts/test.sh builds it with scripts/kube-build.sh
    }
    kubeconfig = p;
    kc = loadKubeConfig(kubeconfig);
    batch = kc.makeApiClient(BatchV1Api);
    core = kc.makeApiClient(CoreV1Api);
  });

  beforeEach(async () => {
    bucket = uniqueName('k8sjobs');
    await storeFor(bucket).ensureBucket();
    ns = await createNamespace(core, 'pgk');
  });

  afterEach(async () => {
    await core.deleteNamespace({ name: ns }).catch(() => undefined);
  });

  function spec(extra: Partial<JobSpecInput> = {}): JobSpecInput {
    const cellId = `sweep/${uniqueName('s')}/t=a/l=de/s=olmo/train`;
    return {
      cellId,
      sweepId: 's',
      image: 'example.invalid/trainer:never-pulled',
      command: ['python', '-m', 'polyglot_jobs.train'],
      resources: { cpu: '1', memory: '1Gi', gpus: 1, shm: '1Gi' },
      outputUri: `s3://${bucket}/students/${cellId.replace(/[/=]/g, '_')}/`,
      ...extra,
    };
  }

  /** What the pod would write when it succeeds. */
  async function writeResult(s: JobSpecInput, steps = 7): Promise<void> {
    const key = `${s.outputUri.replace(`s3://${bucket}/`, '')}result.json`;
    const body = { status: 'succeeded', outputs: { model: `${s.outputUri}model/` }, metrics: { steps } };
    await storeFor(bucket).putText(key, JSON.stringify(body), 'application/json');
  }

  const jobsOf = async (s: JobSpecInput, namespace = ns): Promise<V1Job[]> =>
    (await batch.listNamespacedJob({ namespace, labelSelector: `${LABELS.cell}=${labelValue(s.cellId)}` })).items;
  const podsOf = async (s: JobSpecInput) =>
    (await core.listNamespacedPod({ namespace: ns, labelSelector: `${LABELS.cell}=${labelValue(s.cellId)}` })).items;

  describe('with a worker process', () => {
    let worker: ChildProcess | undefined;
    let taskQueue: string;
    const startWorker = () =>
      spawnWorker({
        POLYGLOT_TASK_QUEUE: taskQueue,
        POLYGLOT_PROVIDERS: '',
        POLYGLOT_KUBECONFIG: kubeconfig,
        POLYGLOT_K8S_NAMESPACE: ns,
        POLYGLOT_K8S_POLL_MS: '300',
      });
    beforeEach(async () => {
      taskQueue = uniqueName('tq');
      worker = await startWorker();
    });
    afterEach(async () => {
      if (worker) await killHard(worker);
    });

    const start = (s: JobSpecInput) =>
      getStack().env.client.workflow.start('jobWorkflow', {
        taskQueue,
        workflowId: uniqueName('job'),
        args: [{ runner: 'kubernetes', spec: s, pollMs: 300, heartbeatSeconds: 3 }],
      });

    /** The watcher's last heartbeat details (its JobStatus), from the workflow's pending activity. */
    async function heartbeat(h: WorkflowHandle): Promise<Record<string, unknown> | undefined> {
      const d = await h.describe();
      const p = d.raw.pendingActivities?.[0]?.heartbeatDetails?.payloads?.[0];
      return p?.data ? (JSON.parse(Buffer.from(p.data).toString('utf8')) as Record<string, unknown>) : undefined;
    }

    async function rootFailure(h: WorkflowHandle): Promise<{ type?: string; message: string }> {
      const err = await h.result().catch((e: unknown) => e);
      assert.ok(err instanceof WorkflowFailedError, `expected a workflow failure, got ${String(err)}`);
      const root = (err.cause as { cause?: { type?: string; message: string } }).cause;
      assert.ok(root, 'the failure has a root cause');
      return root;
    }

    it('runs a Job to success and reads its result', async () => {
      // The pod's command really runs (the pod executor): the test's fake job writes result.json.
      const s = spec({
        command: FAKE_JOB_COMMAND,
        env: { FAKE_JOB_SLEEP_MS: '300' },
        podLabels: { [POD_EXEC_LABEL]: 'true' },
      });
      const executor = new PodExecutor(kc, ns, {
        pathPrefix: [],
        extraEnv: { S3_ENDPOINT: getStack().s3Endpoint, AWS_ACCESS_KEY_ID: 'test', AWS_SECRET_ACCESS_KEY: 'test' },
      });
      executor.start();
      const h = await start(s);
      const r = (await h.result().finally(() => executor.stop())) as {
        jobName: string;
        attached: boolean;
        result: { status: string; metrics: Record<string, number> };
        logsUri: string;
      };
      assert.equal(r.result.status, 'succeeded');
      assert.equal(r.result.metrics.steps, 3);
      assert.equal(executor.ran.length, 1, "the pod's command ran once");
      assert.equal(r.attached, false);
      const jobs = await jobsOf(s);
      assert.equal(jobs.length, 1);
      assert.equal(jobs[0]!.metadata!.name, r.jobName);
      assert.ok(jobs[0]!.status?.conditions?.some((c) => c.type === 'Complete' && c.status === 'True'));
    });

    it('fails non-retryably when the pod exits with a non-retryable code (podFailurePolicy)', async () => {
      const s = spec({ podLabels: { [FAIL_STAGE]: 'true' }, podAnnotations: { [`${FAIL_STAGE}/exit-code`]: '2' } });
      const h = await start(s);
      const root = await rootFailure(h);
      assert.equal(root.type, 'JobFailedPermanently');
      assert.match(root.message, /PodFailurePolicy/);
      assert.match(root.message, /exit 2/);
      assert.equal((await podsOf(s)).length, 1, 'one pod: no retry after a FailJob exit code');
      const d = await h.describe();
      assert.equal(d.raw.pendingActivities?.length ?? 0, 0);
    });

    it('keeps a Job that fits no node queued (Unschedulable) until its deadline, then fails it for good', async function () {
      // The shortest deadline a job may have: a shorter one is refused before launch (test/unit/spec.test.ts).
      this.timeout((MIN_DEADLINE_SECONDS + 60) * 1000);
      const s = spec({
        resources: { cpu: '1', memory: '1Gi', gpus: 16, shm: '1Gi' },
        activeDeadlineSeconds: MIN_DEADLINE_SECONDS,
      });
      const t0 = Date.now();
      const h = await start(s);
      let seen: Record<string, unknown> | undefined;
      await until(
        async () => {
          seen = await heartbeat(h);
          return seen?.phase === 'queued';
        },
        15_000,
        'a queued heartbeat',
      );
      assert.equal(seen!.reason, 'Unschedulable');
      assert.match(String(seen!.message), /Insufficient nvidia\.com\/gpu/);
      const root = await rootFailure(h);
      const elapsed = Date.now() - t0;
      assert.equal(root.type, 'JobFailedPermanently');
      assert.match(root.message, /DeadlineExceeded/);
      assert.ok(elapsed >= (MIN_DEADLINE_SECONDS - 2) * 1000, `failed only at the deadline (after ${elapsed} ms)`);
    });

    it('cancel deletes the Job and its pods', async () => {
      const s = spec({ resources: { cpu: '1', memory: '1Gi', gpus: 16, shm: '1Gi' } });
      const h = await start(s);
      await until(async () => (await podsOf(s)).length > 0, 15_000, 'the pod');
      await h.cancel();
      await assert.rejects(h.result());
      await until(
        async () => (await jobsOf(s)).length === 0 && (await podsOf(s)).length === 0,
        15_000,
        'Job and pods deleted',
      );
    });

    it('survives kill -9 of the worker: one Job, the retried watcher attaches and completes', async function () {
      // Pinned to a node pool that does not exist yet, so the Job stays pending across the crash.
      const pool = { 'polyglot.test/pool': ns };
      const s = spec({ nodeSelector: pool });
      const h = await start(s);
      await until(async () => (await jobsOf(s)).length === 1, 15_000, 'the Job');
      await killHard(worker!);
      worker = await startWorker();
      // Let the retried watcher attach (heartbeat timeout 3 s) before the Job can finish: its first
      // heartbeat says so. (A result already stored would be returned without attaching.)
      await until(
        async () => {
          const pa = (await h.describe()).raw.pendingActivities?.[0];
          const data = pa?.attempt === 2 ? pa.heartbeatDetails?.payloads?.[0]?.data : undefined;
          return !!data && (JSON.parse(Buffer.from(data).toString()) as { attached?: boolean }).attached === true;
        },
        30_000,
        'the second attempt attached',
      );
      await writeResult(s);
      const node: V1Node = {
        metadata: {
          name: `kwok-${ns}`.slice(0, 63),
          annotations: { 'kwok.x-k8s.io/node': 'fake' },
          labels: { type: 'kwok', ...pool },
        },
        status: {
          allocatable: { cpu: '8', memory: '64Gi', pods: '10', 'nvidia.com/gpu': '8' },
          capacity: { cpu: '8', memory: '64Gi', pods: '10', 'nvidia.com/gpu': '8' },
        },
      };
      await core.createNode({ body: node });
      try {
        const r = (await h.result()) as { attached: boolean; result: { status: string } };
        assert.equal(r.result.status, 'succeeded');
        assert.equal(r.attached, true, 'the retried watcher attached to the existing Job');
        assert.equal((await jobsOf(s)).length, 1, 'exactly one Job');
        assert.equal((await podsOf(s)).length, 1, 'exactly one pod');
      } finally {
        await core.deleteNode({ name: node.metadata!.name! }).catch(() => undefined);
      }
    });
  });

  /** A runner whose API calls the test can hold back, and which counts its by-name reads (GETs). */
  function gatedRunner() {
    const runner = new KubernetesJobRunner(kc, { namespace: ns, pollMs: 60_000 });
    const api = (runner as unknown as { batch: BatchV1Api }).batch;
    const reads: string[] = [];
    const read = api.readNamespacedJob.bind(api);
    api.readNamespacedJob = (...args: Parameters<BatchV1Api['readNamespacedJob']>) => {
      reads.push(args[0].name);
      return read(...args);
    };
    return { runner, api, reads };
  }
  const gate = () => {
    let open!: () => void;
    const opened = new Promise<void>((r) => (open = r));
    return { open, opened };
  };

  // The race behind duplicate "-a1" Jobs: a watcher told NotFound fails retryably and its workflow launches a
  // replacement Job. Each half of the fix is pinned on its own below.
  it('a Job created while a shared LIST was in flight is found by the next LIST, not reported NotFound', async () => {
    const { runner, api, reads } = gatedRunner();
    const list = api.listNamespacedJob.bind(api);
    const served = gate();
    const delivered = gate();
    let calls = 0;
    api.listNamespacedJob = async (...args: Parameters<BatchV1Api['listNamespacedJob']>) => {
      const answer = await list(...args); // answered by the API server now...
      if (calls++ === 0) {
        served.open();
        await delivered.opened; // ...and, the first time, delivered only after B exists
      }
      return answer;
    };
    const watchA = runner.status(await runner.submit(JobSpecSchema.parse(spec())));
    await served.opened;
    const handleB = await runner.submit(JobSpecSchema.parse(spec()));
    delivered.open();
    assert.notEqual((await watchA).phase, 'failed', 'A was in the LIST');
    const st = await runner.status(handleB);
    assert.notEqual(st.phase, 'failed', `B is seen, not reported ${st.reason ?? ''} from a LIST that predates it`);
    // The snapshot is stamped when its LIST went out, so it is known not to speak for B: a shared re-LIST
    // answers, not one GET per new Job (what keeps 200 new Jobs at two requests per interval).
    assert.equal(calls, 2, 'B was looked up in a second LIST');
    assert.deepEqual(reads, [], 'no per-Job GET was needed');
  });

  it('forget heartbeats while the Job is still being deleted and stops waiting when cancelled', async () => {
    const { runner, api } = gatedRunner();
    const handle = await runner.submit(JobSpecSchema.parse(spec()));
    // The Job never goes (its pods "linger"): only the caller's cancel ends the wait, long before 120 s.
    const job = await api.readNamespacedJob({ name: handle.name, namespace: ns });
    api.readNamespacedJob = async () => job;
    const stop = new AbortController();
    let beats = 0;
    const forgetting = runner.forget(handle.name, {
      signal: stop.signal,
      heartbeat: () => {
        if (++beats === 2) stop.abort(new Error('activity cancelled'));
      },
    });
    await assert.rejects(forgetting, /activity cancelled/);
    assert.equal(beats, 2, 'one heartbeat per check, none after the cancel');
  });

  it('a Job whose create landed after a newer LIST is confirmed by GET, not reported NotFound', async () => {
    const { runner, api, reads } = gatedRunner();
    const create = api.createNamespacedJob.bind(api);
    const sent = gate();
    const landed = gate();
    api.createNamespacedJob = async (...args: Parameters<BatchV1Api['createNamespacedJob']>) => {
      sent.open();
      await landed.opened; // the request is slow to reach the server...
      return create(...args);
    };
    const b = JobSpecSchema.parse(spec());
    const submitting = runner.submit(b);
    await sent.opened;
    // ...while another watcher's LIST, started after B's submit, is answered without B.
    assert.equal(
      (await runner.status({ name: 'pg-never-created', namespace: ns, attached: false })).reason,
      'NotFound',
      'a Job that does not exist is reported NotFound',
    );
    landed.open();
    const handleB = await submitting;
    const st = await runner.status(handleB);
    assert.notEqual(st.phase, 'failed', `B is confirmed by GET, not reported ${st.reason ?? ''}`);
    assert.deepEqual(reads, ['pg-never-created', handleB.name], 'absence from the LIST was checked by name');
  });

  it('the rendered GPU training manifest passes server-side dry-run', async () => {
    const runner = new KubernetesJobRunner(kc, { namespace: ns });
    const job = await runner.dryRun(GPU_TRAIN_SPEC);
    assert.equal(job.metadata?.name, renderJob(GPU_TRAIN_SPEC, ns).metadata?.name);
    assert.ok(job.metadata?.uid, 'defaulted and admitted by the server');
    assert.equal((await batch.listNamespacedJob({ namespace: ns })).items.length, 0, 'nothing persisted');
  });

  it('the deploy/ kustomize base renders and passes server-side dry-run', () => {
    const kubectl = (...args: string[]) =>
      execFileSync(KUBECTL, ['--kubeconfig', kubeconfig, ...args], { encoding: 'utf8' });
    // Namespaced objects are validated only inside an existing namespace, so it exists for the check.
    kubectl('create', 'namespace', 'polyglot');
    try {
      // kubectl's built-in kustomize renders the base; the API server validates every object without storing it.
      const out = kubectl('apply', '--dry-run=server', '-k', path.join(ROOT, 'deploy/base'));
      for (const obj of [
        'serviceaccount/polyglot-worker',
        'role.rbac.authorization.k8s.io/polyglot-job-runner',
        'rolebinding.rbac.authorization.k8s.io/polyglot-job-runner',
        'configmap/polyglot-worker',
        'deployment.apps/polyglot-worker',
      ]) {
        assert.ok(out.includes(`${obj} created (server dry run)`), out);
      }
      assert.equal(kubectl('get', 'deployments', '-n', 'polyglot', '-o', 'name').trim(), '', 'nothing stored');
    } finally {
      kubectl('delete', 'namespace', 'polyglot', '--wait=false');
    }
  });

  it("the worker's RBAC Role allows exactly what the runner needs", async () => {
    const manifests = ['serviceaccount.yaml', 'rbac.yaml']
      .map((f) =>
        readFileSync(path.join(ROOT, 'deploy/base', f), 'utf8').replace(/namespace: polyglot$/gm, `namespace: ${ns}`),
      )
      .join('\n---\n');
    const kubectl = (...args: string[]) =>
      execFileSync(KUBECTL, ['--kubeconfig', kubeconfig, ...args], { input: manifests, encoding: 'utf8' });
    kubectl('apply', '-n', ns, '-f', '-');
    const token = kubectl('create', 'token', 'polyglot-worker', '-n', ns).trim();
    const cluster = kc.getCurrentCluster()!;
    const sa = new KubeConfig();
    sa.loadFromOptions({
      clusters: [{ ...cluster, name: 'test' }],
      users: [{ name: 'polyglot-worker', token }],
      contexts: [{ name: 'sa', cluster: 'test', user: 'polyglot-worker' }],
      currentContext: 'sa',
    });
    const b = sa.makeApiClient(BatchV1Api);
    const c = sa.makeApiClient(CoreV1Api);
    const apps = sa.makeApiClient(AppsV1Api);
    const code = (p: Promise<unknown>): Promise<number> =>
      p.then(
        () => 200,
        (e: unknown) => (e instanceof ApiException ? e.code : -1),
      );

    const body = renderJob(JobSpecSchema.parse(spec()), ns);
    const name = body.metadata!.name!;
    // Allowed (RoleBinding is not instant: wait for the first call to pass authorization).
    await until(async () => (await code(b.listNamespacedJob({ namespace: ns }))) === 200, 10_000, 'RBAC in effect');
    assert.equal(await code(b.createNamespacedJob({ namespace: ns, body })), 200, 'create job');
    assert.equal(await code(b.readNamespacedJob({ name, namespace: ns })), 200, 'get job');
    assert.equal(await code(b.listNamespacedJob({ namespace: ns })), 200, 'list jobs');
    await until(async () => (await core.listNamespacedPod({ namespace: ns })).items.length > 0, 15_000, 'a pod');
    const pods = await c.listNamespacedPod({ namespace: ns, labelSelector: `job-name=${name}` });
    assert.ok(pods.items.length > 0, 'list pods');
    const pod = pods.items[0]!.metadata!.name!;
    assert.equal(await code(c.readNamespacedPod({ name: pod, namespace: ns })), 200, 'get pod');
    // kwok serves no logs; authorization passed if the answer is anything but 403.
    assert.notEqual(await code(c.readNamespacedPodLog({ name: pod, namespace: ns })), 403, 'pods/log');
    assert.equal(
      await code(b.deleteNamespacedJob({ name, namespace: ns, propagationPolicy: 'Background' })),
      200,
      'delete job',
    );

    // Denied.
    assert.equal(await code(c.listNamespacedSecret({ namespace: ns })), 403, 'list secrets');
    const podBody = { metadata: { name: 'x' }, spec: { containers: [{ name: 'main', image: 'x' }] } };
    assert.equal(await code(c.createNamespacedPod({ namespace: ns, body: podBody })), 403, 'create pods');
    const patch = [{ op: 'add', path: '/metadata/labels/x', value: 'y' }];
    assert.equal(await code(b.patchNamespacedJob({ name, namespace: ns, body: patch })), 403, 'patch jobs');
    assert.equal(await code(b.listNamespacedJob({ namespace: 'default' })), 403, 'jobs in another namespace');
    const deployment = {
      metadata: { name: 'x' },
      spec: {
        selector: { matchLabels: { a: 'b' } },
        template: { metadata: { labels: { a: 'b' } }, spec: { containers: [{ name: 'main', image: 'x' }] } },
      },
    };
    assert.equal(await code(apps.createNamespacedDeployment({ namespace: ns, body: deployment })), 403, 'deployments');
  });
});
