import { ApiException, BatchV1Api, CoreV1Api, KubeConfig, type V1Job, type V1Pod } from '@kubernetes/client-node';
import { LABELS, MANAGED_BY, renderJob } from './manifest';
import { TERMINAL_REASONS, type ForgetWait, type JobHandle, type JobRunner, type JobStatus } from './runner';
import type { JobSpec } from './spec';

/**
 * The Kubernetes backend (batch/v1 Job). Status comes from one shared snapshot per namespace —
 * a LIST of Polyglot's Jobs and a LIST of their pods every `pollMs` — however many jobs are being
 * watched, so 200 watchers cost two requests per interval, not 200 watches.
 */
export interface KubernetesRunnerOptions {
  namespace: string;
  /** Snapshot interval, milliseconds. Default 2000. */
  pollMs?: number;
}

interface Snapshot {
  at: number;
  jobs: Map<string, V1Job>;
  pods: Map<string, V1Pod[]>;
}

export class KubernetesJobRunner implements JobRunner {
  readonly kind = 'kubernetes' as const;
  private readonly batch: BatchV1Api;
  private readonly core: CoreV1Api;
  private snapshot: Snapshot | undefined;
  private inflight: Promise<Snapshot> | undefined;
  /** When this runner created or attached each Job: a snapshot older than that cannot show it yet. */
  private readonly submitted = new Map<string, number>();
  /** API requests made, for the benchmark. */
  requests = 0;

  constructor(
    kc: KubeConfig,
    private readonly opts: KubernetesRunnerOptions,
  ) {
    this.batch = kc.makeApiClient(BatchV1Api);
    this.core = kc.makeApiClient(CoreV1Api);
  }

  get namespace(): string {
    return this.opts.namespace;
  }

  async submit(spec: JobSpec): Promise<JobHandle> {
    const body = renderJob(spec, this.namespace);
    const name = body.metadata!.name!;
    this.submitted.set(name, Date.now());
    try {
      this.requests++;
      await this.batch.createNamespacedJob({ namespace: this.namespace, body });
      return { name, namespace: this.namespace, attached: false };
    } catch (e) {
      // 409 AlreadyExists: a previous attempt of this watcher created it. Attach; never create a second.
      if (e instanceof ApiException && e.code === 409) return { name, namespace: this.namespace, attached: true };
      throw e;
    }
  }

  /** Dry-run create (server-side validation and admission, nothing persisted). */
  async dryRun(spec: JobSpec): Promise<V1Job> {
    this.requests++;
    return this.batch.createNamespacedJob({
      namespace: this.namespace,
      body: renderJob(spec, this.namespace),
      dryRun: 'All',
    });
  }

  private async refresh(): Promise<Snapshot> {
    const selector = `${LABELS.managedBy}=${MANAGED_BY}`;
    // Stamped before the requests go out, not when they return: a Job created while a LIST was in flight
    // may be missing from it, so the snapshot only speaks for Jobs created before it started.
    const at = Date.now();
    this.requests += 2;
    const [jobs, pods] = await Promise.all([
      this.batch.listNamespacedJob({ namespace: this.namespace, labelSelector: selector }),
      this.core.listNamespacedPod({ namespace: this.namespace, labelSelector: selector }),
    ]);
    const snap: Snapshot = { at, jobs: new Map(), pods: new Map() };
    for (const j of jobs.items) snap.jobs.set(j.metadata!.name!, j);
    for (const p of pods.items) {
      const owner =
        p.metadata?.labels?.['job-name'] ?? p.metadata?.ownerReferences?.find((o) => o.kind === 'Job')?.name;
      if (!owner) continue;
      snap.pods.set(owner, [...(snap.pods.get(owner) ?? []), p]);
    }
    return snap;
  }

  /** A snapshot no older than `pollMs`; concurrent callers share one refresh. */
  private async current(): Promise<Snapshot> {
    const pollMs = this.opts.pollMs ?? 2000;
    if (this.snapshot && Date.now() - this.snapshot.at < pollMs) return this.snapshot;
    this.inflight ??= this.refresh().finally(() => (this.inflight = undefined));
    this.snapshot = await this.inflight;
    return this.snapshot;
  }

  async status(handle: JobHandle): Promise<JobStatus> {
    let snap = await this.current();
    // A shared snapshot may predate this Job's creation: absence means something only in a newer one.
    if (!snap.jobs.has(handle.name) && (this.submitted.get(handle.name) ?? Infinity) >= snap.at) {
      this.inflight ??= this.refresh().finally(() => (this.inflight = undefined));
      snap = this.snapshot = await this.inflight;
    }
    const job = snap.jobs.get(handle.name) ?? (await this.read(handle.name));
    const status: JobStatus = job
      ? jobStatusOf(job, snap.pods.get(handle.name) ?? [])
      : {
          phase: 'failed',
          reason: 'NotFound',
          message: `Job ${handle.name} does not exist (deleted or expired)`,
          retryable: true,
        };
    // A long-lived worker watches thousands of Jobs: forget each one's creation time once it has ended.
    if (status.phase === 'succeeded' || status.phase === 'failed') this.submitted.delete(handle.name);
    return status;
  }

  /**
   * The Job by name, or undefined on 404. Absence from a LIST is never taken as final: a "NotFound" makes the
   * watcher launch a replacement Job, so it is confirmed by a direct GET first (one request, only then).
   */
  private async read(name: string): Promise<V1Job | undefined> {
    try {
      this.requests++;
      return await this.batch.readNamespacedJob({ name, namespace: this.namespace });
    } catch (e) {
      if (e instanceof ApiException && e.code === 404) return undefined;
      throw e;
    }
  }

  async cancel(handle: JobHandle): Promise<void> {
    try {
      this.requests++;
      // Background propagation: the API server deletes the pods after the Job.
      await this.batch.deleteNamespacedJob({
        name: handle.name,
        namespace: handle.namespace,
        propagationPolicy: 'Background',
      });
    } catch (e) {
      if (!(e instanceof ApiException && e.code === 404)) throw e;
    }
  }

  async forget(name: string, wait: ForgetWait = {}): Promise<void> {
    this.submitted.delete(name);
    try {
      this.requests++;
      // Foreground: the Job object stays until its pods are gone, so "404" below means the name is free.
      await this.batch.deleteNamespacedJob({ name, namespace: this.namespace, propagationPolicy: 'Foreground' });
    } catch (e) {
      if (!(e instanceof ApiException && e.code === 404)) throw e;
    }
    // Pods can take a while to go: heartbeat each check so the activity is not timed out meanwhile, and
    // stop waiting as soon as the activity is cancelled.
    for (let i = 0; i < 120; i++) {
      wait.signal?.throwIfAborted();
      wait.heartbeat?.();
      try {
        this.requests++;
        await this.batch.readNamespacedJob({ name, namespace: this.namespace });
      } catch (e) {
        if (e instanceof ApiException && e.code === 404) return;
        throw e;
      }
      await sleepUnlessAborted(1000, wait.signal);
    }
    throw new Error(`Job ${name} is still being deleted after 120 s`);
  }

  async logs(handle: JobHandle): Promise<Record<string, string>> {
    this.requests++;
    const pods = await this.core.listNamespacedPod({
      namespace: handle.namespace,
      labelSelector: `job-name=${handle.name}`,
    });
    const out: Record<string, string> = {};
    for (const p of pods.items) {
      const name = p.metadata!.name!;
      try {
        this.requests++;
        out[`${name}.log`] = await this.core.readNamespacedPodLog({
          name,
          namespace: handle.namespace,
          container: 'main',
        });
      } catch (e) {
        out[`${name}.log`] = `(no log: ${e instanceof ApiException ? `HTTP ${e.code}` : String(e)})`;
      }
    }
    return out;
  }
}

/** Map a Job and its pods onto the runner's phases and retry classes (docs/architecture.md, "Errors and retries"). */
export function jobStatusOf(job: V1Job, pods: V1Pod[]): JobStatus {
  const cond = (type: string) => job.status?.conditions?.find((c) => c.type === type && c.status === 'True');
  if (cond('Complete') ?? cond('SuccessCriteriaMet')) return { phase: 'succeeded' };
  const failed = cond('Failed') ?? cond('FailureTarget');
  if (failed) {
    const reason = failed.reason ?? 'Failed';
    const exitCode = lastExitCode(pods);
    // Deadline and fail-fast exit codes mean "this spec will not succeed"; a backoff exhaustion may be flaky infra.
    const retryable = !['DeadlineExceeded', 'PodFailurePolicy'].includes(reason);
    return { phase: 'failed', reason, message: failed.message, retryable, exitCode };
  }
  if (job.spec?.suspend) return { phase: 'queued', reason: 'Suspended', message: 'waiting for admission (Kueue)' };
  for (const p of pods) {
    for (const cs of p.status?.containerStatuses ?? []) {
      const waiting = cs.state?.waiting?.reason;
      if (waiting && TERMINAL_REASONS.includes(waiting)) {
        return { phase: 'failed', reason: waiting, message: cs.state?.waiting?.message, retryable: false };
      }
    }
  }
  const unschedulable = pods.find((p) =>
    p.status?.conditions?.some((c) => c.type === 'PodScheduled' && c.status === 'False'),
  );
  if (unschedulable) {
    const c = unschedulable.status!.conditions!.find((x) => x.type === 'PodScheduled')!;
    return { phase: 'queued', reason: c.reason ?? 'Unschedulable', message: c.message };
  }
  if (pods.some((p) => p.status?.phase === 'Running')) return { phase: 'running' };
  if (pods.some((p) => p.status?.phase === 'Pending')) {
    const reason = pods.flatMap((p) => p.status?.containerStatuses ?? []).find((c) => c.state?.waiting)?.state
      ?.waiting?.reason;
    return { phase: 'pending', reason: reason ?? 'Pending' };
  }
  return { phase: (job.status?.active ?? 0) > 0 ? 'running' : 'pending' };
}

function lastExitCode(pods: V1Pod[]): number | undefined {
  for (const p of [...pods].reverse()) {
    for (const cs of p.status?.containerStatuses ?? []) {
      const code = cs.state?.terminated?.exitCode;
      if (code !== undefined) return code;
    }
  }
  return undefined;
}

export function loadKubeConfig(kubeconfigPath?: string): KubeConfig {
  const kc = new KubeConfig();
  if (kubeconfigPath) kc.loadFromFile(kubeconfigPath);
  else kc.loadFromDefault();
  return kc;
}

/** Sleep `ms`, returning early when `signal` aborts (the caller checks it next). */
function sleepUnlessAborted(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}
