import assert from 'node:assert/strict';
import { storeReport, verifyStoredReport } from '../../src/activities/report';
import { createSweepActivities } from '../../src/activities/sweep';
import { checkSeal, digestBytes } from '../../src/storage/integrity';
import { keys } from '../../src/storage/layout';
import { StoreRegistry, makeS3Client } from '../../src/storage/s3';
import { storeFor, uniqueName } from '../support/fixtures';
import { getStack } from '../support/stack';

/** The sweep summary written in pages (each its own activity payload) reads back as one summary.json. */
describe('sweep summary in pages', () => {
  it('puts every page’s lists back in order, nested paths included', async () => {
    const bucket = uniqueName('summary');
    await storeFor(bucket).ensureBucket();
    const storage = { bucket, prefix: 'polyglot' };
    const acts = createSweepActivities({ stores: new StoreRegistry(makeS3Client(getStack().s3Endpoint, 'us-east-1')) });
    const cells = Array.from({ length: 7 }, (_, i) => ({ cellId: `c${i}` }));
    const students = Array.from({ length: 12 }, (_, i) => ({ student: `s${i}` }));
    const PAGE = 5;
    let count = 0;
    for (let at = 0; at < 12; at += PAGE) {
      await acts.writeSweepSummaryPage({
        storage,
        sweepId: 'sw',
        runId: 'run-1',
        page: count++,
        lists: { 'state.cells': cells.slice(at, at + PAGE), students: students.slice(at, at + PAGE) },
      });
    }
    const uri = await acts.writeSweepSummary({
      storage,
      sweepId: 'sw',
      summary: { sweepId: 'sw', state: { stage: 'done', cells: [] }, students: [], failures: [] },
      pages: { runId: 'run-1', count },
    });
    assert.equal(uri, `s3://${bucket}/${keys.sweepSummary('polyglot', 'sw')}`);
    const back = await storeFor(bucket).getJson<Record<string, unknown>>(keys.sweepSummary('polyglot', 'sw'));
    // Sealed: the record's own digest rides along (integrity.sha256) and checks out.
    assert.equal(checkSeal(back), 'ok');
    const { integrity: _seal, ...summary } = back!;
    assert.deepEqual(summary, { sweepId: 'sw', state: { stage: 'done', cells }, students, failures: [] });

    // A page that is not there (another run's id) fails loudly instead of writing a partial summary.
    await assert.rejects(
      acts.writeSweepSummary({ storage, sweepId: 'sw', summary: {}, pages: { runId: 'run-2', count: 1 } }),
      /summary page .*run-2.* is missing/,
    );
  });

  it('a stored report verifies against its integrity.json; a changed or lost file is named', async () => {
    const bucket = uniqueName('report');
    const store = storeFor(bucket);
    await store.ensureBucket();
    const prefix = keys.sweepReport('polyglot', 'sw');
    const report = {
      markdown: '# board\n',
      html: '<p>board</p>',
      json: '{"rows":[]}',
      csv: { 'cells.csv': 'a,b\n1,2\n' },
    };
    await storeReport(store, prefix, report);
    assert.deepEqual(await verifyStoredReport(store, prefix), []);
    await store.putText(`${prefix}/report.html`, '<p>bored</p>');
    await store.delete(`${prefix}/cells.csv`);
    assert.deepEqual(await verifyStoredReport(store, prefix), [
      `s3://${bucket}/${prefix}/cells.csv is missing`,
      `s3://${bucket}/${prefix}/report.html is damaged (sha256 ${digestBytes('<p>bored</p>').sha256.slice(0, 12)}…, expected ${digestBytes(report.html).sha256.slice(0, 12)}…)`,
    ]);
    await store.delete(`${prefix}/integrity.json`);
    assert.match((await verifyStoredReport(store, prefix))[0]!, /integrity\.json is missing/);
  });
});
