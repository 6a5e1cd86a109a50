import type { ChildProcess } from 'node:child_process';
import { CoreV1Api, PatchStrategy, setHeaderOptions, type KubeConfig, type V1Pod } from '@kubernetes/client-node';
import { spawnTracked, stopProcess } from './registry';

/** Pods with this label have their container command run by the executor (scripts/kwok-stages.yaml). */
export const POD_EXEC_LABEL = 'polyglot.dev/pod-exec';
export const EXIT_CODE_ANNOTATION = 'polyglot.dev/exit-code';

/**
 * The container runtime the test control plane lacks: kwok plays the kubelets (scheduling, pod phases),
 * and this executor runs each labelled pod's container command on this machine with the pod's own
 * environment — literal values, and Secret references resolved through the API server as a kubelet
 * would — then reports the exit code in a pod annotation, which kwok's `pod-exec-finished` stage turns
 * into the pod's final phase. Images are not pulled; `pathPrefix` stands in for the image's PATH.
 */
export class PodExecutor {
  private readonly core: CoreV1Api;
  private readonly started = new Map<string, ChildProcess>();
  private timer?: NodeJS.Timeout;
  private busy = false;
  readonly ran: { pod: string; command: string[]; exitCode?: number; outputTail?: string }[] = [];

  constructor(
    kc: KubeConfig,
    private readonly namespace: string,
    private readonly opts: {
      pathPrefix: string[];
      extraEnv?: Record<string, string>;
      log?: (line: string) => void;
      /** Commands running at once (this machine's cores); other Running pods wait their turn. */
      maxConcurrent?: number;
    },
  ) {
    this.core = kc.makeApiClient(CoreV1Api);
  }

  start(intervalMs = 300): void {
    this.timer = setInterval(() => {
      if (this.busy) return;
      this.busy = true;
      this.tick()
        .catch((e: unknown) => this.opts.log?.(`pod executor: ${(e as Error).message}`))
        .finally(() => (this.busy = false));
    }, intervalMs);
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await Promise.all([...this.started.values()].map((child) => stopProcess(child)));
  }

  private async tick(): Promise<void> {
    const pods = await this.core.listNamespacedPod({
      namespace: this.namespace,
      labelSelector: `${POD_EXEC_LABEL}=true`,
    });
    for (const pod of pods.items) {
      const name = pod.metadata!.name!;
      if (pod.status?.phase !== 'Running' || this.started.has(name)) continue;
      if (pod.metadata?.annotations?.[EXIT_CODE_ANNOTATION] !== undefined) continue;
      const active = this.ran.filter((r) => r.exitCode === undefined).length;
      if (active >= (this.opts.maxConcurrent ?? Infinity)) return;
      await this.run(pod);
    }
  }

  private async envOf(pod: V1Pod): Promise<Record<string, string>> {
    const c = pod.spec!.containers[0]!;
    const env: Record<string, string> = {};
    for (const e of c.env ?? []) {
      if (e.value !== undefined) env[e.name] = e.value;
      else if (e.valueFrom?.secretKeyRef) {
        const ref = e.valueFrom.secretKeyRef;
        const secret = await this.core.readNamespacedSecret({ name: ref.name!, namespace: this.namespace });
        const b64 = secret.data?.[ref.key];
        if (b64 === undefined) throw new Error(`secret ${ref.name} has no key ${ref.key}`);
        env[e.name] = Buffer.from(b64, 'base64').toString('utf8');
      }
    }
    for (const src of c.envFrom ?? []) {
      if (!src.secretRef?.name) continue;
      const secret = await this.core.readNamespacedSecret({ name: src.secretRef.name, namespace: this.namespace });
      for (const [k, v] of Object.entries(secret.data ?? {})) env[k] = Buffer.from(v, 'base64').toString('utf8');
    }
    return env;
  }

  private async run(pod: V1Pod): Promise<void> {
    const name = pod.metadata!.name!;
    const c = pod.spec!.containers[0]!;
    const command = [...(c.command ?? []), ...(c.args ?? [])];
    const env = {
      PATH: [...this.opts.pathPrefix, process.env.PATH ?? ''].join(':'),
      HOME: process.env.HOME ?? '/tmp',
      ...this.opts.extraEnv,
      ...(await this.envOf(pod)),
    };
    const record: (typeof this.ran)[number] = { pod: name, command };
    this.ran.push(record);
    const child = spawnTracked(
      command[0]!,
      command.slice(1),
      { env, stdio: ['ignore', 'pipe', 'pipe'] },
      `pod ${name}`,
    );
    this.started.set(name, child);
    const lines: string[] = [];
    const keep = (d: Buffer) => lines.push(...d.toString().split('\n').filter(Boolean).slice(-50));
    child.stdout!.on('data', keep);
    child.stderr!.on('data', keep);
    child.once('exit', (code, signal) => {
      record.exitCode = code ?? 137;
      if (record.exitCode !== 0) {
        // Kept on the record so a test can put a failed pod's own words into its assertion message.
        record.outputTail = lines.slice(-30).join('\n');
        this.opts.log?.(`pod ${name} exited ${code ?? signal}:\n${record.outputTail}`);
      }
      this.core
        .patchNamespacedPod(
          {
            name,
            namespace: this.namespace,
            body: { metadata: { annotations: { [EXIT_CODE_ANNOTATION]: String(record.exitCode) } } },
          },
          setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
        )
        .catch((e: unknown) => this.opts.log?.(`pod ${name}: cannot record its exit code: ${(e as Error).message}`));
    });
  }
}
