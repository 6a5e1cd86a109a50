import assert from 'node:assert/strict';
import { reportPrefix, storeReport } from '../../src/activities/report';
import { readStoredScores } from '../../src/cli/report';
import { renderReport } from '../../src/report/render';
import { formatLeaderboard } from '../../src/report/terminal';
import type { CohortScores } from '../../src/scoring/types';
import { storeFor, uniqueName } from '../support/fixtures';

/** `sweep status` reads the leaderboard back from the stored report's scores.json, checked against its seal. */
describe('the terminal leaderboard from a stored report', () => {
  const scores: CohortScores = {
    options: { alpha: 0.5, smallGapThreshold: 0.02 } as CohortScores['options'],
    cells: [{ teacher: 't1', language: 'de', family: 'qwen', z_score: 0.1, pg_score: 0.3, flags: [] }],
    teachers: [{ teacher: 't1', family: 'qwen', rank: 1, pg_score: 0.3, languages: 1 }],
    analyses: { families: [] } as unknown as CohortScores['analyses'],
    warnings: [],
  };

  it('reads the scores the report wrote; a missing or changed scores.json is a problem, not a leaderboard', async () => {
    const bucket = uniqueName('board');
    const store = storeFor(bucket);
    await store.ensureBucket();
    const storage = { bucket, prefix: 'polyglot' };
    const none = await readStoredScores(store, storage, 'sw', 'v1');
    assert.equal(none.scores, undefined);
    assert.match(none.problem ?? '', /no report stored yet/);

    const report = renderReport({ sweepId: 'sw', generatedAt: '2026-01-01T00:00:00Z', scores });
    const prefix = reportPrefix(storage, 'sw', 'v1');
    await storeReport(store, prefix, report);
    const got = await readStoredScores(store, storage, 'sw', 'v1');
    assert.equal(got.problem, undefined);
    assert.deepEqual(got.scores, scores);
    assert.equal(got.location, `${store.uri(prefix)}/`);
    assert.equal(formatLeaderboard(got.scores!)[3], '   1  t1          0.300      1        0');

    await store.putText(`${prefix}/scores.json`, report.json.replace('0.3', '0.9'));
    const changed = await readStoredScores(store, storage, 'sw', 'v1');
    assert.equal(changed.scores, undefined);
    assert.match(changed.problem ?? '', /scores\.json is damaged/);
  });
});
