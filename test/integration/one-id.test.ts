import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { WorkflowFailedError } from '@temporalio/client';
import { FakeLlmServer } from '../support/fake-server';
import { planSweep, specVersion } from '../../src/spec/plan';
import { parseSweepSpec, type SweepSpecInput } from '../../src/spec/sweep';
import { putSealed } from '../../src/storage/integrity';
import { keys } from '../../src/storage/layout';
import { sweepWorkflow } from '../../src/workflows';
import { fakeMetrics, importDemoSeeds, smallSpec, startWorkers, storeFor, uniqueName } from '../support/fixtures';
import { processEnv, runCommand, temporalCliStart } from '../support/processes';
import { ROOT, getStack } from '../support/stack';

const POLYGLOT = path.join(ROOT, 'bin/polyglot');

/**
 * One sweep id, one spec (issue #16): the workflow refuses an id other than `sweep/<sweepId>`, `sweep
 * start` refuses another spec under a used id (running or finished) unless `--new-run`, which keeps the
 * earlier version's spec, summary and report, and `resume` stays on its id.
 */
describe('one sweep id, one spec', function () {
  this.timeout(300_000);
  let llm: FakeLlmServer;
  const dir = mkdtempSync(path.join(tmpdir(), 'pg-oneid-'));
  before(async () => {
    llm = new FakeLlmServer({ modelIds: ['fake-model'] });
    await llm.start();
  });
  after(async () => llm.stop());

  const writeSpec = (spec: SweepSpecInput) => {
    const file = path.join(dir, `${uniqueName('spec')}.json`);
    writeFileSync(file, JSON.stringify(spec));
    return file;
  };
  const sweepRuns = async (sweepId: string) => {
    const runs: { workflowId: string; runId: string }[] = [];
    for await (const w of getStack().env.client.workflow.list({ query: `WorkflowType = "sweepWorkflow"` }))
      if (w.workflowId.includes(sweepId)) runs.push({ workflowId: w.workflowId, runId: w.runId });
    return runs;
  };

  it('refuses a wrong workflow id, from the stock Temporal CLI and from a client, naming the id to use', async () => {
    const bucket = uniqueName('oneid');
    const seedPool = await importDemoSeeds(bucket);
    const spec = smallSpec({ bucket, seedPool, llmUrl: llm.url, sweepId: uniqueName('sw'), counts: 1 });
    const plan = planSweep(parseSweepSpec(spec));
    const workers = await startWorkers([]);
    try {
      const wrongId = uniqueName('web-ui-default');
      await temporalCliStart({ workflowId: wrongId, taskQueue: workers.taskQueue, input: spec });
      const client = getStack().env.client;
      const viaCli = await client.workflow
        .getHandle(wrongId)
        .result()
        .then(
          () => undefined,
          (e: unknown) => e,
        );
      const viaClient = await client.workflow
        .execute(sweepWorkflow, { taskQueue: workers.taskQueue, workflowId: `sweep/${plan.sweepId}-x`, args: [spec] })
        .then(
          () => undefined,
          (e: unknown) => e,
        );
      for (const err of [viaCli, viaClient]) {
        assert.ok(err instanceof WorkflowFailedError, String(err));
        const cause = err.cause as { type?: string; message: string; nonRetryable?: boolean };
        assert.equal(cause.type, 'WrongWorkflowId');
        assert.equal(cause.nonRetryable, true);
        assert.match(cause.message, new RegExp(`start it with workflow id "sweep/${plan.sweepId}"`));
      }
      // Refused before any work: nothing recorded for the sweep.
      assert.deepEqual(await storeFor(bucket).list(keys.sweep('polyglot', plan.sweepId)), []);
    } finally {
      await workers.stop();
    }
  });

  it('refuses another spec under a running or finished id; --new-run keeps the old version; resume stays on its id', async () => {
    const bucket = uniqueName('oneid');
    const providerId = uniqueName('p');
    const taskQueue = uniqueName('tq');
    const seedPool = await importDemoSeeds(bucket);
    const sweepId = uniqueName('sw');
    const a: SweepSpecInput = {
      ...smallSpec({ bucket, seedPool, llmUrl: llm.url, sweepId, providerId, counts: 1 }),
      metrics: fakeMetrics(providerId, 2),
    };
    const b = structuredClone(a);
    b.teachers[0]!.sampling = { temperature: 0.5, topP: 0.9, maxTokens: 128 };
    const [fileA, fileB] = [writeSpec(a), writeSpec(b)];
    const [versionA, versionB] = [specVersion(parseSweepSpec(a)), specVersion(parseSweepSpec(b))];
    const env = processEnv({ POLYGLOT_TASK_QUEUE: taskQueue });
    const cli = (...args: string[]) => runCommand(POLYGLOT, args, env);
    const store = storeFor(bucket);
    const workflowId = planSweep(parseSweepSpec(a)).workflowId;

    // No worker yet: the first run stays RUNNING while the other starts are tried.
    const first = await cli('sweep', 'start', fileA);
    assert.equal(first.code, 0, first.out);
    assert.match(first.out, /started: sweep /);
    const again = await cli('sweep', 'start', fileA);
    assert.equal(again.code, 0, again.out);
    assert.match(again.out, /already running with this spec; attached to sweep/);
    for (const extra of [[], ['--new-run']]) {
      const other = await cli('sweep', 'start', fileB, ...extra);
      assert.equal(other.code, 2, other.out);
      assert.match(other.out, new RegExp(`sweep ${sweepId} is running with a different spec`));
      assert.match(other.out, /teachers\[0\]\.sampling\.temperature: 0\.8 → 0\.5/);
      assert.match(other.out, /cancel it|another sweepId/);
    }
    assert.equal((await sweepRuns(sweepId)).length, 1, 'one workflow run so far');

    const workers = await startWorkers([providerId], taskQueue);
    try {
      await getStack().env.client.workflow.getHandle(workflowId).result();
      const runsAfterA = await sweepRuns(sweepId);
      // Finished, same spec: said so, nothing started.
      const finished = await cli('sweep', 'start', fileA);
      assert.equal(finished.code, 0, finished.out);
      assert.match(finished.out, /already ran this spec \(COMPLETED.*nothing started/);
      assert.match(finished.out, new RegExp(`polyglot report ${sweepId}`));
      // Finished, other spec: refused, with the ways out.
      const refused = await cli('sweep', 'start', fileB);
      assert.equal(refused.code, 2, refused.out);
      assert.match(refused.out, /already ran \(COMPLETED\) with a different spec/);
      assert.match(refused.out, /--new-run/);
      assert.deepEqual(await sweepRuns(sweepId), runsAfterA, 'no run started by a refused or finished start');

      const specA = await store.getText(keys.sweepSpec('polyglot', sweepId, versionA));
      const summaryA = await store.getText(keys.sweepSummary('polyglot', sweepId, versionA));
      const scoresA = await store.getText(`${keys.sweepReport('polyglot', sweepId, versionA)}/scores.json`);
      assert.ok(specA && summaryA && scoresA, 'version A has its spec, summary and report');

      const newRun = await cli('sweep', 'start', fileB, '--new-run', '--wait');
      assert.equal(newRun.code, 0, newRun.out);
      assert.match(newRun.out, /COMPLETED/);
      // The old version is untouched; the new one sits beside it; latest points at it.
      assert.equal(await store.getText(keys.sweepSpec('polyglot', sweepId, versionA)), specA);
      assert.equal(await store.getText(keys.sweepSummary('polyglot', sweepId, versionA)), summaryA);
      assert.equal(await store.getText(`${keys.sweepReport('polyglot', sweepId, versionA)}/scores.json`), scoresA);
      const recordedB = await store.getJson<{ spec: { teachers: { sampling: { temperature: number } }[] } }>(
        keys.sweepSpec('polyglot', sweepId, versionB),
      );
      assert.equal(recordedB?.spec.teachers[0]?.sampling.temperature, 0.5);
      assert.ok(await store.exists(keys.sweepSummary('polyglot', sweepId, versionB)));
      assert.equal(
        (await store.getJson<{ version: string }>(keys.sweepLatest('polyglot', sweepId)))?.version,
        versionB,
      );

      // status and report show the latest; report can name an earlier version.
      const status = await cli('sweep', 'status', sweepId);
      assert.match(status.out, new RegExp(`COMPLETED \\(run [^,]+, version ${versionB}\\)`));
      const latest = await cli('report', sweepId, '--out', path.join(dir, 'latest'));
      assert.equal(latest.code, 0, latest.out);
      assert.match(latest.out, new RegExp(`reports/${sweepId}/runs/${versionB}`));
      const verified = await cli('report', sweepId, '--verify');
      assert.equal(verified.code, 0, verified.out);
      assert.match(verified.out, new RegExp(`reports/${sweepId}/runs/${versionB}: intact`));
      const older = await cli('report', sweepId, '--out', path.join(dir, 'older'), '--run', versionA);
      assert.equal(older.code, 0, older.out);
      assert.match(older.out, new RegExp(`reports/${sweepId}/runs/${versionA}`));

      // resume: a new run under the same id, never another id (a spec naming another sweep is refused).
      const resumed = await cli('sweep', 'resume', sweepId, '--wait');
      assert.equal(resumed.code, 0, resumed.out);
      const elsewhere = writeSpec({ ...b, sweepId: `${sweepId}-other` });
      const wrong = await cli('sweep', 'resume', sweepId, '--spec', elsewhere);
      assert.equal(wrong.code, 2, wrong.out);
      assert.match(wrong.out, new RegExp(`the spec names sweep ${sweepId}-other, not ${sweepId}`));
      const runs = await sweepRuns(sweepId);
      assert.equal(runs.length, 3, 'A, B (--new-run) and the resume of B');
      assert.ok(
        runs.every((r) => r.workflowId === workflowId),
        runs.map((r) => r.workflowId).join(', '),
      );
    } finally {
      await workers.stop();
    }
  });

  it('compares with the spec recorded in S3 once Temporal has forgotten the run (retention)', async () => {
    const bucket = uniqueName('oneid');
    const seedPool = await importDemoSeeds(bucket);
    const sweepId = uniqueName('sw');
    const old = parseSweepSpec(smallSpec({ bucket, seedPool, llmUrl: llm.url, sweepId, counts: 1 }));
    const version = specVersion(old);
    // What recordSweep left behind for a run that Temporal no longer holds.
    const store = storeFor(bucket);
    await store.putJson(keys.sweepSpec('polyglot', sweepId, version), { spec: old });
    await store.putJson(keys.sweepLatest('polyglot', sweepId), { version });
    const changed = smallSpec({ bucket, seedPool, llmUrl: llm.url, sweepId, counts: 2 });
    const res = await runCommand(
      POLYGLOT,
      ['sweep', 'start', writeSpec(changed)],
      processEnv({ POLYGLOT_TASK_QUEUE: uniqueName('tq') }),
    );
    assert.equal(res.code, 2, res.out);
    assert.match(res.out, /already ran \(ENDED\) with a different spec/);
    assert.match(res.out, /strategies\.generate\.count: 1 → 2/);
    assert.deepEqual(await sweepRuns(sweepId), [], 'nothing started');

    // Records written now are sealed: an edited spec.json is refused as damaged, not compared with.
    const specKey = keys.sweepSpec('polyglot', sweepId, version);
    await putSealed(store, specKey, { spec: old });
    await putSealed(store, keys.sweepLatest('polyglot', sweepId), { version });
    const text = (await store.getText(specKey))!;
    await store.putText(specKey, text.replace('"count": 1', '"count": 2'));
    const damaged = await runCommand(
      POLYGLOT,
      ['sweep', 'start', writeSpec(changed)],
      processEnv({ POLYGLOT_TASK_QUEUE: uniqueName('tq') }),
    );
    assert.equal(damaged.code, 2, damaged.out);
    assert.match(damaged.out, new RegExp(`${specKey.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')} is damaged`));
    assert.deepEqual(await sweepRuns(sweepId), [], 'nothing started');
  });

  it('never attaches to a running sweep whose spec it cannot read', async () => {
    const bucket = uniqueName('oneid');
    const seedPool = await importDemoSeeds(bucket);
    const sweepId = uniqueName('sw');
    const spec = smallSpec({ bucket, seedPool, llmUrl: llm.url, sweepId, counts: 1 });
    // A run whose input this version refuses (a rate below its bound), left RUNNING: no worker polls its queue.
    const unreadable = { ...spec, providers: [{ ...spec.providers[0]!, requestsPerMinute: 0.5 }] };
    const handle = await getStack().env.client.workflow.start('sweepWorkflow', {
      taskQueue: uniqueName('nobody-polls'),
      workflowId: planSweep(parseSweepSpec(spec)).workflowId,
      args: [unreadable],
    });
    try {
      const res = await runCommand(
        POLYGLOT,
        ['sweep', 'start', writeSpec(spec)],
        processEnv({ POLYGLOT_TASK_QUEUE: uniqueName('tq') }),
      );
      assert.equal(res.code, 2, res.out);
      assert.match(res.out, /is running with a spec this version cannot read/);
      assert.equal((await handle.describe()).status.name, 'RUNNING', 'the running sweep is left alone');
      assert.equal((await sweepRuns(sweepId)).length, 1, 'no second run');
    } finally {
      await handle.terminate('test over');
    }
  });

  it('says in words, without gRPC status codes, that a sweep does not exist', async () => {
    for (const args of [
      ['sweep', 'status', 'no-such-sweep'],
      ['report', 'no-such-sweep'],
      ['sweep', 'pause', 'no-such-sweep'],
    ]) {
      const res = await runCommand(POLYGLOT, args, processEnv({}));
      assert.notEqual(res.code, 0, res.out);
      assert.doesNotMatch(res.out, /\b\d+ [A-Z_]{4,}:/, res.out);
      assert.match(res.out, /no sweep workflow sweep\/no-such-sweep on this Temporal server/, res.out);
    }
  });
});
