import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { WorkflowFailedError, WorkflowNotFoundError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { POLICY_ENV, PolicyViolationError } from '../../src/common/policy';
import { LocalJobRunner } from '../../src/jobs/local';
import { JobSpecSchema } from '../../src/jobs/spec';
import { FakeLlmServer } from '../../src/llm/fake-server';
import { planSweep } from '../../src/spec/plan';
import { parseSweepSpec, type SweepSpecInput } from '../../src/spec/sweep';
import { FAKE_JOB_COMMAND, importDemoSeeds, smallSpec, storeFor, uniqueName } from '../support/fixtures';
import { killHard, processEnv, runCommand, spawnWorker, temporalCliStart, until } from '../support/processes';
import { ROOT, getStack } from '../support/stack';

/**
 * A spec is untrusted: whoever may start a workflow writes one. These are the attacks of issue #16 —
 * a worker credential sent as a Bearer token to a host of the spec's choosing, a cloud metadata
 * address as a provider, a job reading any worker variable through `secretEnv` — started the ways an
 * attacker would start them: the Polyglot CLI and a stock `temporal workflow start` (the Web UI's path).
 * The worker allows one loopback port (the real provider); the "foreign host" is a recorder on another.
 */
describe('trust policy: secrets and hosts a spec may not reach', function () {
  this.timeout(120_000);
  const SECRETS = { S3: 'aws-secret-policy-5e1f9a', KEY: 'sk-policy-allowed-3c8d', HF: 'hf_policyTestToken987' };
  let llm: FakeLlmServer;
  let recorder: Server;
  /** Every request the foreign host got, with its Authorization header. */
  const received: { url: string; authorization?: string }[] = [];
  let foreignUrl: string;
  let worker: ChildProcess | undefined;
  let taskQueue: string;
  let providerId: string;
  let jobsDir: string;
  let workerEnv: Record<string, string>;

  before(async () => {
    llm = new FakeLlmServer({ modelIds: ['fake-model'], requireApiKey: SECRETS.KEY });
    await llm.start();
    recorder = createServer((req, res) => {
      received.push({ url: req.url ?? '', authorization: req.headers.authorization });
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
    await new Promise<void>((r) => recorder.listen(0, '127.0.0.1', r));
    foreignUrl = `http://127.0.0.1:${(recorder.address() as AddressInfo).port}/v1`;
    taskQueue = uniqueName('tq');
    providerId = uniqueName('p');
    jobsDir = mkdtempSync(path.join(tmpdir(), 'pg-policy-jobs-'));
    workerEnv = {
      POLYGLOT_TASK_QUEUE: taskQueue,
      POLYGLOT_PROVIDERS: providerId,
      POLYGLOT_JOBS_DIR: jobsDir,
      // Only the real provider's port: the recorder, on the same loopback address, is another host.
      POLYGLOT_ALLOWED_HOSTS: new URL(llm.url).host,
      POLYGLOT_PROVIDER_KEY_TEST: SECRETS.KEY,
      AWS_SECRET_ACCESS_KEY: SECRETS.S3,
      HF_TOKEN: SECRETS.HF,
    };
    worker = await spawnWorker(workerEnv);
  });
  after(async () => {
    if (worker) await killHard(worker);
    await llm?.stop();
    recorder?.close();
  });

  it('has a recorder that would see a leaked key (the control for "received none")', async () => {
    await fetch(`${foreignUrl}/probe`, { headers: { authorization: 'Bearer probe' } });
    assert.deepEqual(received.splice(0), [{ url: '/v1/probe', authorization: 'Bearer probe' }]);
  });

  const specWith = (bucket: string, provider: Record<string, unknown>, extra: Partial<SweepSpecInput> = {}) =>
    ({
      ...smallSpec({
        bucket,
        seedPool: `s3://${bucket}/polyglot/seeds/sha256-${'0'.repeat(64)}`,
        llmUrl: llm.url,
        sweepId: uniqueName('sw'),
        providerId,
        counts: 1,
      }),
      providers: [{ id: providerId, ...provider }],
      ...extra,
    }) as SweepSpecInput;

  /** `temporal workflow start` with the spec as the one JSON input, as the Web UI sends it. */
  async function temporalStart(spec: SweepSpecInput): Promise<string> {
    const workflowId = planSweep(parseSweepSpec(spec)).workflowId;
    await temporalCliStart({ workflowId, taskQueue, input: spec });
    return workflowId;
  }

  async function policyFailure(workflowId: string): Promise<string> {
    const err = await getStack()
      .env.client.workflow.getHandle(workflowId)
      .result()
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    assert.ok(err instanceof WorkflowFailedError, `expected the sweep to fail, got ${String(err)}`);
    assert.ok(err.cause instanceof ApplicationFailure);
    assert.equal(err.cause.type, 'PolicyViolation');
    assert.equal(err.cause.nonRetryable, true);
    return err.cause.message;
  }

  /**
   * A CLI environment with exactly these policy settings: the test support's own (job commands, Secrets)
   * would otherwise make the CLI take its environment for the worker's policy.
   */
  const cliEnv = (settings: Record<string, string>) => {
    const env = processEnv(settings);
    for (const k of POLICY_ENV) if (!(k in settings)) delete env[k];
    return env;
  };

  const nothingWritten = async (bucket: string) =>
    assert.deepEqual(
      await storeFor(bucket)
        .list('')
        .catch(() => []),
      [],
      'nothing written to S3',
    );

  it("refuses the worker's S3 secret as a provider key to another host (temporal workflow start)", async () => {
    const bucket = uniqueName('exfil');
    const wf = await temporalStart(specWith(bucket, { baseUrl: foreignUrl, apiKeyEnv: 'AWS_SECRET_ACCESS_KEY' }));
    const message = await policyFailure(wf);
    assert.match(message, /providers\[0\]\.baseUrl: host 127\.0\.0\.1:\d+ is not allowed by this worker/);
    assert.match(message, /providers\[0\]\.apiKeyEnv: AWS_SECRET_ACCESS_KEY is one of the worker's own credentials/);
    assert.ok(!message.includes(SECRETS.S3));
    assert.deepEqual(received, [], 'the foreign host received no request');
    await nothingWritten(bucket);
  });

  it('refuses an allowed key sent to a host not on the allow-list (temporal workflow start)', async () => {
    const bucket = uniqueName('exfil');
    const wf = await temporalStart(specWith(bucket, { baseUrl: foreignUrl, apiKeyEnv: 'POLYGLOT_PROVIDER_KEY_TEST' }));
    assert.match(await policyFailure(wf), /providers\[0\]\.baseUrl: host 127\.0\.0\.1:\d+ is not allowed/);
    assert.deepEqual(received, [], 'the foreign host received no request');
    await nothingWritten(bucket);
  });

  it('refuses a cloud metadata address as a provider (temporal workflow start)', async () => {
    for (const baseUrl of ['http://169.254.169.254/latest/meta-data/', 'http://[::ffff:169.254.169.254]/v1']) {
      const bucket = uniqueName('meta');
      const wf = await temporalStart(specWith(bucket, { baseUrl }));
      assert.match(await policyFailure(wf), /providers\[0\]\.baseUrl: .* link-local address .*refused/);
      await nothingWritten(bucket);
    }
  });

  it('lists every problem at once: providers, metrics providers and job secrets', async () => {
    const bucket = uniqueName('many');
    const job = {
      runner: 'local' as const,
      image: 'local',
      command: FAKE_JOB_COMMAND,
      secretEnv: [{ name: 'HF_TOKEN', secretName: 'polyglot-hf', key: 'token' }],
    };
    const spec = specWith(
      bucket,
      { baseUrl: llm.url },
      {
        providers: [
          { id: providerId, baseUrl: llm.url },
          { id: 'judge', baseUrl: 'http://metadata.google.internal/v1', apiKeyEnv: 'HF_TOKEN' },
        ],
        metrics: { judge: { provider: 'judge', model: 'm' } },
        students: [{ id: 'stu', model: 'org/student' }],
        training: job,
        evaluation: { ...job, dataUri: `s3://${bucket}/benchmarks/` },
      },
    );
    const message = await policyFailure(await temporalStart(spec));
    assert.match(message, /providers\[1\]\.baseUrl: http:\/\/metadata\.google\.internal is a cloud metadata service/);
    assert.match(message, /providers\[1\]\.apiKeyEnv: HF_TOKEN is not an allowed provider key variable/);
    assert.match(message, /training\.secretEnv\[0\]: secret polyglot-hf\/token is not mapped .*POLYGLOT_LOCAL_SECRETS/);
    assert.match(message, /evaluation\.secretEnv\[0\]/);
    await nothingWritten(bucket);
  });

  it('refuses a job that names a worker variable through secretEnv, at launch (local runner)', async () => {
    // Before the policy, the local runner copied the worker's variable of the given name into the job.
    const bucket = uniqueName('jobleak');
    const cellId = `sweep/${uniqueName('s')}/t=a/l=de/s=x/train`;
    const h = await getStack().env.client.workflow.start('jobWorkflow', {
      taskQueue,
      workflowId: uniqueName('job'),
      args: [
        {
          runner: 'local',
          spec: {
            cellId,
            sweepId: 's',
            image: 'local',
            command: FAKE_JOB_COMMAND,
            secretEnv: [{ name: 'HF_TOKEN', secretName: 'anything', key: 'HF_TOKEN' }],
            outputUri: `s3://${bucket}/out/`,
          },
          pollMs: 200,
        },
      ],
    });
    const err = await h.result().then(
      () => undefined,
      (e: unknown) => e,
    );
    assert.ok(err instanceof WorkflowFailedError);
    const cause = err.cause?.cause;
    assert.ok(cause instanceof ApplicationFailure && cause.type === 'PolicyViolation', String(err.cause));
    assert.match(cause.message, /job\.secretEnv\[0\]: secret anything\/HF_TOKEN is not mapped/);
    assert.deepEqual(
      readdirSync(jobsDir).filter((d) => !d.startsWith('.')),
      [],
      'no job was launched',
    );
  });

  it('refuses the same specs from `polyglot sweep start`, before anything is written or started', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'pg-policy-cli-'));
    const cases: [string, Record<string, unknown>, Record<string, string>, RegExp][] = [
      // Without the worker's settings on this machine: what every worker refuses is still an error.
      [
        'the S3 secret as a key',
        { baseUrl: foreignUrl, apiKeyEnv: 'AWS_SECRET_ACCESS_KEY' },
        {},
        /providers\[0\]\.apiKeyEnv: AWS_SECRET_ACCESS_KEY is one of the worker's own credentials/,
      ],
      [
        'a metadata address',
        { baseUrl: 'http://169.254.169.254/latest/' },
        {},
        /providers\[0\]\.baseUrl: 169\.254\.169\.254 is a link-local address/,
      ],
      // With the worker's settings here too, the CLI enforces them.
      [
        'a foreign host',
        { baseUrl: foreignUrl, apiKeyEnv: 'POLYGLOT_PROVIDER_KEY_TEST' },
        { POLYGLOT_ALLOWED_HOSTS: workerEnv.POLYGLOT_ALLOWED_HOSTS! },
        /providers\[0\]\.baseUrl: host 127\.0\.0\.1:\d+ is not allowed by this worker/,
      ],
    ];
    for (const [name, provider, env, expected] of cases) {
      const bucket = uniqueName('cli');
      const inS3 = specWith(bucket, provider);
      const spec = { ...inS3, seedPool: path.join(ROOT, 'seeds/demo.jsonl') };
      const file = path.join(dir, `${uniqueName('spec')}.json`);
      writeFileSync(file, JSON.stringify(spec));
      const res = await runCommand(path.join(ROOT, 'bin/polyglot'), ['sweep', 'start', file], cliEnv(env));
      assert.equal(res.code, 2, `${name}: ${res.out}`);
      assert.match(res.out, expected, name);
      await nothingWritten(bucket);
      await assert.rejects(
        getStack()
          .env.client.workflow.getHandle(planSweep(parseSweepSpec(inS3)).workflowId)
          .describe(),
        WorkflowNotFoundError,
      );
    }
    assert.deepEqual(received, [], 'the foreign host received no request');
  });

  it('warns in `sweep plan` about what the default policy would refuse', async () => {
    const bucket = uniqueName('plan');
    const spec = {
      ...specWith(bucket, { baseUrl: 'https://api.openai.com/v1', apiKeyEnv: 'OPENAI_API_KEY' }),
      seedPool: path.join(ROOT, 'seeds/demo.jsonl'),
    };
    const file = path.join(mkdtempSync(path.join(tmpdir(), 'pg-policy-plan-')), 'spec.json');
    writeFileSync(file, JSON.stringify(spec));
    const res = await runCommand(path.join(ROOT, 'bin/polyglot'), ['sweep', 'plan', file], cliEnv({}));
    assert.equal(res.code, 0, res.out);
    assert.match(res.out, /warning: providers\[0\]\.baseUrl: host api\.openai\.com is not allowed/);
    assert.match(res.out, /warning: providers\[0\]\.apiKeyEnv: OPENAI_API_KEY is not an allowed provider key variable/);
  });

  it('still sends an allowed key to an allowed host: the sweep completes', async () => {
    const bucket = uniqueName('ok');
    const seedPool = await importDemoSeeds(bucket);
    const spec = { ...specWith(bucket, { baseUrl: llm.url, apiKeyEnv: 'POLYGLOT_PROVIDER_KEY_TEST' }), seedPool };
    const plan = planSweep(parseSweepSpec(spec));
    await getStack().env.client.workflow.execute('sweepWorkflow', {
      taskQueue,
      workflowId: plan.workflowId,
      args: [spec],
    });
    assert.ok(llm.stats().served > 0, 'the allowed provider was called with the key');
    assert.equal(llm.stats().rejected, 0);
    assert.deepEqual(received, [], 'the foreign host received no request');
  });
});

describe('local runner: what a job gets from the worker environment', function () {
  this.timeout(30_000);

  it('gets the secrets the operator mapped and the S3 settings, no other worker variable', async () => {
    const root = mkdtempSync(path.join(tmpdir(), 'pg-policy-env-'));
    const worker: NodeJS.ProcessEnv = {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      HF_TOKEN: 'hf_mappedToken42',
      POLYGLOT_PROVIDER_KEY_A: 'sk-provider-never-in-jobs',
      POLYGLOT_CODEC_KEY: 'codec-key-never-in-jobs',
      SOME_OTHER_SECRET: 'other-never-in-jobs',
      AWS_SECRET_ACCESS_KEY: 's3-secret-by-design',
      S3_ENDPOINT: 'http://127.0.0.1:1',
    };
    const runner = new LocalJobRunner(root, worker, [], 1, new Map([['polyglot-hf/token', 'HF_TOKEN']]));
    const spec = (secretEnv: { name: string; secretName: string; key: string }[]) =>
      JobSpecSchema.parse({
        cellId: `sweep/${uniqueName('s')}/t=a/l=de/s=x/train`,
        sweepId: 's',
        image: 'local',
        command: ['sh', '-c', 'env'],
        secretEnv,
        outputUri: 's3://polyglot-test/out/',
      });
    const handle = await runner.submit(spec([{ name: 'MY_HF', secretName: 'polyglot-hf', key: 'token' }]));
    await until(async () => (await runner.status(handle)).phase !== 'running', 20_000, 'the job to exit');
    const log = (await runner.logs(handle))['main.log'] ?? '';
    assert.match(log, /^MY_HF=hf_mappedToken42$/m);
    assert.match(log, /^AWS_SECRET_ACCESS_KEY=s3-secret-by-design$/m, 'local jobs get the S3 credentials by design');
    for (const v of ['sk-provider-never-in-jobs', 'codec-key-never-in-jobs', 'other-never-in-jobs'])
      assert.ok(!log.includes(v), `${v} reached the job`);
    assert.ok(!/^HF_TOKEN=/m.test(log), 'the worker variable itself is not passed');

    // A reference the operator did not map is refused: before, it read the worker's variable of that name.
    await assert.rejects(
      runner.submit(spec([{ name: 'HF_TOKEN', secretName: 'anything', key: 'HF_TOKEN' }])),
      PolicyViolationError,
    );
  });
});
