import { JobSpecSchema } from '../../src/jobs/spec';

/** A realistic GPU training job: the manifest snapshot (test/unit/jobs) and the server-side dry-run (jobs-kubernetes). */
export const GPU_TRAIN_SPEC = JobSpecSchema.parse({
  cellId: 'sweep/paper-grid/t=gemma-3-27b/l=de/s=olmo-3-7b/train',
  sweepId: 'paper-grid',
  attempt: 0,
  image: 'ghcr.io/polyglot/trainer:0.1.0',
  command: ['python', '-m', 'polyglot_jobs.train'],
  args: ['--spec', 's3://polyglot/jobs/train.json'],
  env: { HF_HUB_OFFLINE: '1' },
  secretEnv: [
    { name: 'HF_TOKEN', secretName: 'polyglot-hf', key: 'token' },
    { name: 'AWS_SECRET_ACCESS_KEY', secretName: 'polyglot-s3', key: 'secret-access-key' },
  ],
  envFromSecrets: ['polyglot-extra'],
  resources: { cpu: '8', memory: '64Gi', gpus: 1, gpuType: 'NVIDIA-H100-80GB-HBM3', shm: '16Gi' },
  queueName: 'gpu-queue',
  activeDeadlineSeconds: 43200,
  inputs: { dataset: 's3://polyglot/datasets/gemma-3-27b/de/abc/manifest.json' },
  outputUri: 's3://polyglot/students/paper-grid/gemma-3-27b/de/olmo-3-7b/',
});
