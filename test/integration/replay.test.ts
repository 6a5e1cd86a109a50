import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { historyFromJSON } from '@temporalio/common/lib/proto-utils';
import { Worker } from '@temporalio/worker';
import * as workflows from '../../src/workflows';
import { sharedBundle } from '../support/fixtures';
import { ROOT } from '../support/stack';

const DIR = path.join(ROOT, 'test/fixtures/histories');

interface Fixture {
  file: string;
  workflowId: string;
  workflowType: string;
}

/**
 * Histories recorded from a real sweep before the workflow code last changed (test/support/record-histories.ts)
 * replay against today's bundle: running sweeps, and resumes under the same ids, keep working. A command
 * scheduled in another order, under another id or with other options fails the replay with a nondeterminism error.
 */
describe('recorded workflow histories replay against the current code', function () {
  this.timeout(120_000);
  const index = JSON.parse(readFileSync(path.join(DIR, 'index.json'), 'utf8')) as Fixture[];

  it('has a recorded history of every workflow the worker runs', () => {
    assert.deepEqual(new Set(index.map((f) => f.workflowType)), new Set(Object.keys(workflows)));
  });

  for (const f of index) {
    it(`replays ${f.workflowType} ${f.workflowId}`, async () => {
      const history = historyFromJSON(JSON.parse(readFileSync(path.join(DIR, f.file), 'utf8')));
      assert.ok((history.events?.length ?? 0) > 3, 'a recorded run, not an empty history');
      await Worker.runReplayHistory({ workflowBundle: await sharedBundle() }, history, f.workflowId);
    });
  }
});
