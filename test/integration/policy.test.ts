import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { HeadBucketCommand } from '@aws-sdk/client-s3';
import { WorkflowFailedError, WorkflowNotFoundError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { POLICY_ENV, PolicyViolationError } from '../../src/common/policy';
import { LocalJobRunner } from '../../src/jobs/local';
import { JobSpecSchema } from '../../src/jobs/spec';
import { FakeLlmServer } from '../support/fake-server';
import { planSweep } from '../../src/spec/plan';
import { parseSweepSpec, type Provider, type SweepSpecInput } from '../../src/spec/sweep';
import { makeS3Client } from '../../src/storage/s3';
import { metricsWorkflowId } from '../../src/common/workflow-ids';
import { FAKE_JOB_COMMAND, fakeMetrics, importDemoSeeds, smallSpec, storeFor, uniqueName } from '../support/fixtures';
import { killHard, processEnv, runCommand, spawnWorker, temporalCliStart, until } from '../support/processes';
import { spawnTracked, stopProcess } from '../support/registry';
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

  // A bucket that was never made lists as empty; any other S3 error fails the test rather than passing it.
  const nothingWritten = async (bucket: string) =>
    assert.deepEqual(await storeFor(bucket).list(''), [], 'nothing written to S3');

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

describe("local runner: the runner's own values and pids", function () {
  this.timeout(30_000);

  const specFor = (env: Record<string, string>, command = ['sh', '-c', 'env']) =>
    JobSpecSchema.parse({
      cellId: `sweep/${uniqueName('s')}/t=a/l=de/s=x/train`,
      sweepId: 's',
      image: 'local',
      command,
      env,
      outputUri: 's3://polyglot-test/out/',
    });

  it("applies the worker's HOME, model cache, offline switches and contract variables over a spec's", async () => {
    const root = mkdtempSync(path.join(tmpdir(), 'pg-policy-own-'));
    const worker: NodeJS.ProcessEnv = {
      PATH: process.env.PATH,
      HOME: '/home/worker',
      HF_HUB_OFFLINE: '1',
      POLYGLOT_MODEL_CACHE: '/var/cache/models',
    };
    const runner = new LocalJobRunner(root, worker, [], 1, new Map());
    // runJob refuses these names first; the runner's order is the last line of defence.
    const spec = specFor({
      HOME: '/tmp/spec-home',
      HF_HUB_OFFLINE: '0',
      POLYGLOT_MODEL_CACHE: '/tmp/spec-cache',
      POLYGLOT_OUTPUT_URI: 's3://elsewhere/x/',
      PATH: '/tmp/spec-bin',
    });
    const handle = await runner.submit(spec);
    await until(async () => (await runner.status(handle)).phase !== 'running', 20_000, 'the job to exit');
    const log = (await runner.logs(handle))['main.log'] ?? '';
    assert.match(log, /^HOME=\/home\/worker$/m);
    assert.match(log, /^HF_HUB_OFFLINE=1$/m);
    assert.match(log, /^POLYGLOT_MODEL_CACHE=\/var\/cache\/models$/m);
    assert.match(log, /^POLYGLOT_OUTPUT_URI=s3:\/\/polyglot-test\/out\/$/m);
    assert.ok(!log.includes('/tmp/spec-'), log);
  });

  it('does not signal a pid that is no longer the job (forget and cancel of a finished or replaced job)', async () => {
    const root = mkdtempSync(path.join(tmpdir(), 'pg-policy-pid-'));
    const runner = new LocalJobRunner(root, { PATH: process.env.PATH }, [], 1, new Map());
    // A live process group that is not the job: what the job's pid may belong to after it ended.
    const bystander = spawnTracked('sleep', ['60'], { detached: true, stdio: 'ignore' });
    try {
      const alive = () => {
        try {
          process.kill(bystander.pid!, 0);
          return true;
        } catch {
          return false;
        }
      };
      const run = async () => {
        const handle = await runner.submit(specFor({}, ['true']));
        await until(async () => (await runner.status(handle)).phase !== 'running', 20_000, 'the job to exit');
        writeFileSync(path.join(root, handle.name, 'pid'), String(bystander.pid));
        return handle;
      };
      // Finished (its exit code recorded): neither cancel nor forget signals anything.
      const done = await run();
      await runner.cancel(done);
      await runner.forget(done.name);
      assert.ok(alive(), 'a finished job: the stale pid was not signalled');
      // No exit code (the wrapper was killed before writing it): the pid is checked to be this job's.
      const lost = await run();
      rmSync(path.join(root, lost.name, 'exit'));
      await runner.cancel(lost);
      await runner.forget(lost.name);
      assert.ok(alive(), 'a process without the job in its environment was not signalled');
    } finally {
      await stopProcess(bystander, 'SIGKILL');
    }
  });

  it("still stops a job whose wrapper was killed: the group's members carry the job's folder", async () => {
    const root = mkdtempSync(path.join(tmpdir(), 'pg-policy-orphan-'));
    const runner = new LocalJobRunner(root, { PATH: process.env.PATH }, [], 1, new Map());
    const handle = await runner.submit(specFor({}, ['sleep', '60']));
    const pgid = Number(readFileSync(path.join(root, handle.name, 'pid'), 'utf8'));
    const members = () =>
      readdirSync('/proc')
        .filter((d) => /^\d+$/.test(d))
        .filter((d) => {
          try {
            const stat = readFileSync(`/proc/${d}/stat`, 'latin1');
            return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]) === pgid;
          } catch {
            return false;
          }
        });
    await until(async () => members().length >= 2, 10_000, 'the wrapper and its job');
    process.kill(pgid, 'SIGKILL');
    await until(async () => !members().includes(String(pgid)), 10_000, 'the wrapper gone');
    assert.ok(members().length >= 1, 'the job outlived its wrapper');
    await runner.cancel(handle);
    await until(async () => members().length === 0, 10_000, 'the orphaned job stopped');
  });
});

/**
 * The sweep's up-front check is one door; a child workflow started directly (the Web UI lists them all)
 * is another. Each activity enforces the policy where it uses a bucket, a provider or a job spec.
 */
describe('trust policy: child workflows started directly', function () {
  this.timeout(120_000);
  const S3_SECRET = 'aws-secret-direct-7b2c4d';
  const KEY = 'sk-direct-allowed-1a9f';
  let llm: FakeLlmServer;
  let recorder: Server;
  const received: string[] = [];
  let foreignUrl: string;
  let worker: ChildProcess | undefined;
  let taskQueue: string;
  let providerId: string;
  let jobsDir: string;

  before(async () => {
    llm = new FakeLlmServer({ modelIds: ['fake-model'], requireApiKey: KEY });
    await llm.start();
    recorder = createServer((req, res) => {
      received.push(`${req.url ?? ''} ${req.headers.authorization ?? ''}`);
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
    await new Promise<void>((r) => recorder.listen(0, '127.0.0.1', r));
    foreignUrl = `http://127.0.0.1:${(recorder.address() as AddressInfo).port}/v1`;
    taskQueue = uniqueName('tq');
    providerId = uniqueName('p');
    jobsDir = mkdtempSync(path.join(tmpdir(), 'pg-direct-jobs-'));
    worker = await spawnWorker({
      POLYGLOT_TASK_QUEUE: taskQueue,
      POLYGLOT_PROVIDERS: providerId,
      POLYGLOT_JOBS_DIR: jobsDir,
      POLYGLOT_ALLOWED_HOSTS: new URL(llm.url).host,
      POLYGLOT_ALLOWED_BUCKETS: 'pgok-*',
      POLYGLOT_PROVIDER_KEY_TEST: KEY,
      AWS_SECRET_ACCESS_KEY: S3_SECRET,
    });
  });
  after(async () => {
    if (worker) await killHard(worker);
    await llm?.stop();
    recorder?.close();
  });

  /** A parsed one-teacher spec in `bucket`, with its first dataset cell. */
  async function cellOf(bucket: string, withSeeds: boolean) {
    const seedPool = withSeeds
      ? await importDemoSeeds(bucket)
      : `s3://${bucket}/polyglot/seeds/sha256-${'0'.repeat(64)}`;
    const input = smallSpec({ bucket, seedPool, llmUrl: llm.url, sweepId: uniqueName('sw'), providerId, counts: 1 });
    input.providers[0]!.apiKeyEnv = 'POLYGLOT_PROVIDER_KEY_TEST';
    const spec = parseSweepSpec({ ...input, teachers: [input.teachers[0]!], metrics: fakeMetrics(providerId, 4) });
    const cell = planSweep(spec).cells[0]!;
    const exfil: Provider = { ...spec.providers[0]!, baseUrl: foreignUrl, apiKeyEnv: 'AWS_SECRET_ACCESS_KEY' };
    return { spec, cell, exfil };
  }

  const datasetInput = (c: Awaited<ReturnType<typeof cellOf>>, provider: Provider) => ({
    sweepId: c.spec.sweepId!,
    cell: c.cell,
    teacher: c.spec.teachers[0]!,
    provider,
    spec: c.spec,
  });

  /** The workflow's failure, down to the activity's ApplicationFailure. */
  async function rootFailure(workflowType: string, args: unknown[]): Promise<ApplicationFailure> {
    const h = await getStack().env.client.workflow.start(workflowType, {
      taskQueue,
      workflowId: uniqueName('d'),
      args,
    });
    const err = await h.result().then(
      () => undefined,
      (e: unknown) => e,
    );
    assert.ok(err instanceof WorkflowFailedError, `expected ${workflowType} to fail, got ${String(err)}`);
    let cause: unknown = err.cause;
    while (cause && !(cause instanceof ApplicationFailure)) cause = (cause as { cause?: unknown }).cause;
    assert.ok(cause instanceof ApplicationFailure, String(err.cause));
    return cause;
  }

  it('datasetWorkflow in a bucket off the allow-list: refused before anything is read or created', async () => {
    const bucket = uniqueName('pgno');
    const c = await cellOf(bucket, false);
    const f = await rootFailure('datasetWorkflow', [datasetInput(c, c.spec.providers[0]!)]);
    assert.equal(f.type, 'PolicyViolation');
    assert.match(
      f.message,
      /storage\.bucket: bucket "pgno-[^"]+" is not one this worker may use .*POLYGLOT_ALLOWED_BUCKETS/,
    );
    const s3 = makeS3Client(getStack().s3Endpoint, 'us-east-1');
    await assert.rejects(s3.send(new HeadBucketCommand({ Bucket: bucket })), 'the bucket was not created');
    assert.equal(llm.stats().served, 0);
  });

  it('jobWorkflow: an output bucket, a model bucket or a worker path off the allow-list is refused at launch', async () => {
    const start = (outputUri: string, config: Record<string, unknown>, env: Record<string, string> = {}) =>
      rootFailure('jobWorkflow', [
        {
          runner: 'local',
          spec: {
            cellId: `sweep/${uniqueName('s')}/t=a/l=de/s=x/train`,
            sweepId: 's',
            image: 'local',
            command: FAKE_JOB_COMMAND,
            env: { ...env, POLYGLOT_JOB_CONFIG: JSON.stringify(config) },
            outputUri,
          },
          pollMs: 200,
        },
      ]);
    const out = await start(`s3://${uniqueName('pgno')}/out/`, { student: 'org/model' });
    assert.equal(out.type, 'PolicyViolation');
    assert.match(out.message, /job\.outputUri: bucket "pgno-/);
    const refs = await start(`s3://${uniqueName('pgok')}/out/`, {
      student: `s3://${uniqueName('pgno')}/models/m/`,
      model: 'file:///home/worker/.ssh',
      dataUri: '/etc',
    });
    assert.equal(refs.type, 'PolicyViolation');
    assert.match(refs.message, /job\.env\.POLYGLOT_JOB_CONFIG\.student: bucket "pgno-/);
    assert.match(
      refs.message,
      /POLYGLOT_JOB_CONFIG\.model: "file:\/\/\/home\/worker\/\.ssh" is a path on the job's machine/,
    );
    assert.match(refs.message, /POLYGLOT_JOB_CONFIG\.dataUri: "\/etc" is a path on the job's machine/);
    // PYTHONWARNINGS imports a module at start and `antigravity` runs $BROWSER: code execution in the job.
    const code = await start(
      `s3://${uniqueName('pgok')}/out/`,
      {},
      { PYTHONWARNINGS: 'ignore::antigravity.X', BROWSER: "sh -c 'touch /tmp/pwned' %s" },
    );
    assert.equal(code.type, 'PolicyViolation');
    assert.match(code.message, /job\.env\.PYTHONWARNINGS: /);
    assert.match(code.message, /job\.env\.BROWSER: /);
    assert.deepEqual(
      readdirSync(jobsDir).filter((d) => !d.startsWith('.')),
      [],
      'no job was launched',
    );
  });

  it("datasetWorkflow with the worker's S3 secret as a provider key to another host: refused, nothing sent", async () => {
    const c = await cellOf(uniqueName('pgok'), true);
    const f = await rootFailure('datasetWorkflow', [datasetInput(c, c.exfil)]);
    assert.equal(f.type, 'PolicyViolation');
    assert.match(f.message, /baseUrl: host 127\.0\.0\.1:\d+ is not allowed by this worker/);
    assert.match(f.message, /apiKeyEnv: AWS_SECRET_ACCESS_KEY is one of the worker's own credentials/);
    assert.ok(!f.message.includes(S3_SECRET));
    assert.deepEqual(received, [], 'the foreign host received no request');
  });

  it("metricsWorkflow with the worker's S3 secret as a provider key to another host: refused, nothing sent", async () => {
    const c = await cellOf(uniqueName('pgok'), true);
    // A real dataset first (the allowed provider), so the metric activities get as far as calling a model.
    await getStack().env.client.workflow.execute('datasetWorkflow', {
      taskQueue,
      workflowId: uniqueName('d'),
      args: [datasetInput(c, c.spec.providers[0]!)],
    });
    assert.ok(llm.stats().served > 0);
    const f = await rootFailure('metricsWorkflow', [
      {
        cellId: metricsWorkflowId({ sweepId: c.spec.sweepId!, teacherId: c.cell.teacherId, language: c.cell.language }),
        teacherId: c.cell.teacherId,
        language: c.cell.language,
        datasetKey: c.cell.datasetKey,
        storage: c.spec.storage,
        metrics: c.spec.metrics,
        providers: [c.exfil],
        retry: c.spec.retry,
      },
    ]);
    assert.equal(f.type, 'PolicyViolation');
    assert.match(f.message, /apiKeyEnv: AWS_SECRET_ACCESS_KEY is one of the worker's own credentials/);
    assert.ok(!f.message.includes(S3_SECRET));
    assert.deepEqual(received, [], 'the foreign host received no request');
  });
});
