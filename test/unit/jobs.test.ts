import assert from 'node:assert/strict';
import { readFileSync, writeFileSync, existsSync } from 'node:fs';
import path from 'node:path';
import type { V1Job, V1Pod } from '@kubernetes/client-node';
import { jobStatusOf } from '../../src/jobs/kubernetes';
import { renderJob } from '../../src/jobs/manifest';
import { JobTemplateSchema, MIN_DEADLINE_SECONDS, TEMPLATE_ITEMS } from '../../src/common/job-template';
import {
  CONTRACT_ENV,
  JOB_CONFIG_ENV,
  JobSpecSchema,
  jobEnvironment,
  jobName,
  jobSpecFrom,
  labelValue,
} from '../../src/jobs/spec';
import { EvaluationSchema, TrainingSchema } from '../../src/spec/sweep';

const ROOT = path.resolve(__dirname, '../../..');

import { GPU_TRAIN_SPEC } from '../support/job-specs';

export { GPU_TRAIN_SPEC };

describe('job manifests', () => {
  it('renders a GPU training Job that matches the reviewed snapshot', () => {
    const rendered = renderJob(GPU_TRAIN_SPEC, 'polyglot');
    const file = path.join(ROOT, 'test/fixtures/gpu-train-job.json');
    if (process.env.UPDATE_SNAPSHOTS === '1' || !existsSync(file))
      writeFileSync(file, JSON.stringify(rendered, null, 2) + '\n');
    assert.deepEqual(rendered, JSON.parse(readFileSync(file, 'utf8')) as V1Job);
  });

  it('references secrets only by name, never by value', () => {
    const json = JSON.stringify(renderJob(GPU_TRAIN_SPEC, 'polyglot'));
    assert.match(json, /"secretKeyRef":\{"name":"polyglot-hf","key":"token"\}/);
    assert.ok(!/"name":"HF_TOKEN","value"/.test(json));
  });

  it("keeps the contract's variables the runner's: a spec's entry of the same name is dropped", () => {
    const spec = {
      ...GPU_TRAIN_SPEC,
      env: { ...GPU_TRAIN_SPEC.env, POLYGLOT_OUTPUT_URI: 's3://elsewhere/x/' },
      secretEnv: [...GPU_TRAIN_SPEC.secretEnv, { name: 'POLYGLOT_CELL_ID', secretName: 'polyglot-hf', key: 'token' }],
    };
    const env = renderJob(spec, 'polyglot').spec!.template.spec!.containers[0]!.env!;
    assert.deepEqual(
      env.filter((e) => e.name === 'POLYGLOT_OUTPUT_URI').map((e) => e.value),
      [GPU_TRAIN_SPEC.outputUri],
    );
    assert.deepEqual(
      env.filter((e) => e.name === 'POLYGLOT_CELL_ID').map((e) => e.value),
      [GPU_TRAIN_SPEC.cellId],
    );
  });

  it('names Jobs deterministically, DNS-1123 and ≤ 63 characters, different per attempt', () => {
    const ids = [
      GPU_TRAIN_SPEC.cellId,
      'sweep/x/t=' + 'a'.repeat(200) + '/l=de/train',
      'sweep/UPPER_case/t=Ünïcode/l=de/eval',
      'sweep/a/t=b/l=c/train',
    ];
    for (const id of ids) {
      for (const attempt of [0, 1, 17]) {
        const n = jobName(id, attempt);
        assert.ok(n.length <= 63, n);
        assert.match(n, /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, n);
        assert.equal(jobName(id, attempt), n);
      }
      assert.notEqual(jobName(id, 0), jobName(id, 1));
    }
    assert.ok(labelValue('sweep/' + 'x'.repeat(100)).length <= 63);
    // A long id keeps its most specific end readable: language, student and stage.
    assert.match(
      jobName('sweep/a-rather-long-sweep-name-2026/t=teacher-a/l=de/s=olmo/train', 0),
      /-l-de-s-olmo-train-a0-/,
    );
  });
});

describe('the job template, defined once', () => {
  const ids = { cellId: 'sweep/s1/t=a/l=de/s=olmo/train', sweepId: 's1' };
  const out = 's3://polyglot-test/students/x/';
  const template = (over: Record<string, unknown> = {}) =>
    JobTemplateSchema.parse({
      runner: 'kubernetes',
      image: 'ghcr.io/x/trainer:1',
      command: ['polyglot-train'],
      ...over,
    });
  /** The messages a job spec made from the template gets from the job runner's schema. */
  const launchProblems = (over: Record<string, unknown>): string[] => {
    const t = { ...template(), ...over } as ReturnType<typeof template>;
    const r = JobSpecSchema.safeParse(jobSpecFrom(t, ids, {}, {}, out));
    return r.success ? [] : r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
  };
  const templateProblems = (over: Record<string, unknown>): string[] => {
    const r = JobTemplateSchema.safeParse({ ...template(), ...over });
    return r.success ? [] : r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
  };

  it('is the shape of training and evaluation: every template field, with the same schema', () => {
    for (const schema of [TrainingSchema, EvaluationSchema]) {
      for (const [field, fieldSchema] of Object.entries(JobTemplateSchema.shape)) {
        assert.equal(schema.shape[field as keyof typeof schema.shape], fieldSchema, field);
      }
    }
  });

  it('launches every template the sweep accepts, at the edges of each rule', () => {
    const env = Object.fromEntries(Array.from({ length: TEMPLATE_ITEMS }, (_, i) => [`V${i}`, 'x']));
    const t = template({
      queueName: 'gpu.queue-A_1',
      activeDeadlineSeconds: MIN_DEADLINE_SECONDS,
      gpuType: 'NVIDIA-H100-80GB-HBM3',
      cpu: '500m',
      memory: '1.5Gi',
      env,
      podLabels: { 'polyglot.dev/team': 'a' },
    });
    const spec = JobSpecSchema.parse(jobSpecFrom(t, ids, { lr: 1 }, { data: 's3://polyglot-test/d/' }, out));
    assert.equal(spec.activeDeadlineSeconds, MIN_DEADLINE_SECONDS);
    assert.equal(spec.queueName, 'gpu.queue-A_1');
    assert.equal(Object.keys(spec.env).length, TEMPLATE_ITEMS + 1, 'the full env plus the job config');
    assert.equal(spec.env[JOB_CONFIG_ENV], '{"lr":1}');
  });

  it('refuses what the runner would refuse, with the same message, when the sweep is validated', () => {
    const bad: Record<string, unknown>[] = [
      { queueName: 'GPU Queue' },
      { queueName: 'q'.repeat(64) },
      { activeDeadlineSeconds: MIN_DEADLINE_SECONDS - 1 },
      { podLabels: { team: 'a b' } },
    ];
    for (const over of bad) {
      const atSweep = templateProblems(over);
      const atLaunch = launchProblems(over);
      assert.equal(atSweep.length, 1, `${JSON.stringify(over)}: ${atSweep.join('; ')}`);
      assert.equal(atLaunch.length, 1, `${JSON.stringify(over)}: ${atLaunch.join('; ')}`);
      // Same rule, same words; only the path differs where the job spec nests resources.
      assert.equal(atLaunch[0]!.split(': ').slice(1).join(': '), atSweep[0]!.split(': ').slice(1).join(': '));
    }
  });

  it("builds one environment for every backend: the manifest's is jobEnvironment's", () => {
    const env = jobEnvironment(GPU_TRAIN_SPEC);
    assert.deepEqual(
      env.values.slice(-CONTRACT_ENV.length).map((e) => e.name),
      [...CONTRACT_ENV],
    );
    const container = renderJob(GPU_TRAIN_SPEC, 'polyglot').spec!.template.spec!.containers[0]!;
    assert.deepEqual(
      container.env!.filter((e) => e.value !== undefined),
      env.values,
    );
    assert.deepEqual(
      container.env!.filter((e) => e.valueFrom).map((e) => e.name),
      env.secrets.map((s) => s.name),
    );
  });
});

describe('Job status mapping', () => {
  const job = (status: V1Job['status'], suspend = false): V1Job => ({ spec: { suspend, template: {} }, status });
  const pod = (status: V1Pod['status']): V1Pod => ({ status });
  const cond = (type: string, reason?: string) => ({ type, status: 'True', reason });

  it('maps conditions and pod states to phases and retry classes', () => {
    assert.deepEqual(jobStatusOf(job({ conditions: [cond('SuccessCriteriaMet'), cond('Complete')] }), []), {
      phase: 'succeeded',
    });
    assert.equal(jobStatusOf(job({ conditions: [cond('FailureTarget', 'DeadlineExceeded')] }), []).retryable, false);
    assert.equal(jobStatusOf(job({ conditions: [cond('Failed', 'PodFailurePolicy')] }), []).retryable, false);
    assert.equal(jobStatusOf(job({ conditions: [cond('Failed', 'BackoffLimitExceeded')] }), []).retryable, true);
    assert.deepEqual(jobStatusOf(job({}, true), []), {
      phase: 'queued',
      reason: 'Suspended',
      message: 'waiting for admission (Kueue)',
    });
    const unschedulable = pod({
      phase: 'Pending',
      conditions: [
        {
          type: 'PodScheduled',
          status: 'False',
          reason: 'Unschedulable',
          message: '0/2 nodes: Insufficient nvidia.com/gpu',
        },
      ],
    });
    assert.equal(jobStatusOf(job({ active: 1 }), [unschedulable]).phase, 'queued');
    const pull = pod({
      phase: 'Pending',
      containerStatuses: [
        {
          name: 'main',
          image: 'x',
          imageID: '',
          ready: false,
          restartCount: 0,
          state: { waiting: { reason: 'ImagePullBackOff' } },
        },
      ],
    });
    assert.deepEqual(jobStatusOf(job({ active: 1 }), [pull]), {
      phase: 'failed',
      reason: 'ImagePullBackOff',
      message: undefined,
      retryable: false,
    });
    assert.equal(jobStatusOf(job({ active: 1 }), [pod({ phase: 'Running' })]).phase, 'running');
  });
});
