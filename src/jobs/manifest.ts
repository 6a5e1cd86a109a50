import type { V1Job } from '@kubernetes/client-node';
import { jobEnvironment, jobName, labelValue, type JobSpec } from './spec';

export const MANAGED_BY = 'polyglot';
export const LABELS = {
  managedBy: 'app.kubernetes.io/managed-by',
  sweep: 'polyglot.dev/sweep-id',
  cell: 'polyglot.dev/cell-id',
  attempt: 'polyglot.dev/attempt',
  queue: 'kueue.x-k8s.io/queue-name',
} as const;

/**
 * Render a batch/v1 Job from the job contract. Pure and deterministic, so the rendered manifest can
 * be snapshot-tested and dry-run against an API server. Secrets appear only as references.
 */
export function renderJob(spec: JobSpec, namespace: string): V1Job {
  const name = jobName(spec.cellId, spec.attempt);
  const labels: Record<string, string> = {
    [LABELS.managedBy]: MANAGED_BY,
    [LABELS.sweep]: labelValue(spec.sweepId),
    [LABELS.cell]: labelValue(spec.cellId),
    [LABELS.attempt]: String(spec.attempt),
    ...(spec.queueName ? { [LABELS.queue]: spec.queueName } : {}),
  };
  const gpuLimits: Record<string, string> =
    spec.resources.gpus > 0 ? { 'nvidia.com/gpu': String(spec.resources.gpus) } : {};
  const env = jobEnvironment(spec);
  return {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: {
      name,
      namespace,
      labels,
      annotations: { 'polyglot.dev/cell-id': spec.cellId, 'polyglot.dev/output-uri': spec.outputUri },
    },
    spec: {
      backoffLimit: spec.backoffLimit,
      activeDeadlineSeconds: spec.activeDeadlineSeconds,
      ttlSecondsAfterFinished: spec.ttlSecondsAfterFinished,
      // Fail fast on exit codes that retrying cannot fix; node drains and preemptions do not count.
      podFailurePolicy: {
        rules: [
          {
            action: 'FailJob',
            onExitCodes: { containerName: 'main', operator: 'In', values: spec.nonRetryableExitCodes },
          },
          { action: 'Ignore', onPodConditions: [{ type: 'DisruptionTarget', status: 'True' }] },
        ],
      },
      template: {
        metadata: {
          labels: { ...spec.podLabels, ...labels },
          ...(spec.podAnnotations && Object.keys(spec.podAnnotations).length
            ? { annotations: { ...spec.podAnnotations } }
            : {}),
        },
        spec: {
          restartPolicy: 'Never',
          ...(Object.keys(spec.nodeSelector).length || spec.resources.gpuType
            ? {
                nodeSelector: {
                  ...spec.nodeSelector,
                  ...(spec.resources.gpuType ? { 'nvidia.com/gpu.product': spec.resources.gpuType } : {}),
                },
              }
            : {}),
          tolerations: [
            ...(spec.resources.gpus > 0 ? [{ key: 'nvidia.com/gpu', operator: 'Exists', effect: 'NoSchedule' }] : []),
            ...spec.tolerations,
          ],
          containers: [
            {
              name: 'main',
              image: spec.image,
              command: spec.command,
              args: spec.args,
              env: [
                ...env.values,
                ...env.secrets.map((s) => ({
                  name: s.name,
                  valueFrom: { secretKeyRef: { name: s.secretName, key: s.key } },
                })),
              ],
              ...(spec.envFromSecrets.length
                ? { envFrom: spec.envFromSecrets.map((s) => ({ secretRef: { name: s } })) }
                : {}),
              resources: {
                requests: { cpu: spec.resources.cpu, memory: spec.resources.memory, ...gpuLimits },
                limits: { memory: spec.resources.memory, ...gpuLimits },
              },
              volumeMounts: [{ name: 'dshm', mountPath: '/dev/shm' }],
            },
          ],
          volumes: [{ name: 'dshm', emptyDir: { medium: 'Memory', sizeLimit: spec.resources.shm } }],
        },
      },
    },
  };
}
