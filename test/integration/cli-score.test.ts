import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { runCommand } from '../support/processes';
import { ROOT } from '../support/stack';

/**
 * `polyglot score --from`: a results table with z given directly (as in the paper's published table)
 * plus anchors, scored by the real CLI. Expected values are hand-computed:
 *   PGR = (S − B)/(R − B); PG = (PGR + z)/2.
 */
describe('polyglot score --from (paper-table mode)', function () {
  this.timeout(30_000);

  it('prints per-cell PGR, z, PG and flags, and the per-teacher leaderboard; writes scores.json', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'pg-score-'));
    const file = path.join(dir, 'results.json');
    writeFileSync(
      file,
      JSON.stringify({
        cells: [
          { teacher: 'gemma-3-27b', language: 'de', family: 'olmo', result: 0.6, z_score: 0.8 },
          { teacher: 'gemma-3-27b', language: 'ar', family: 'olmo', result: 0.4, z_score: 0.5 },
          { teacher: 'llama-8b', language: 'de', family: 'olmo', result: 0.5, z_score: -0.8 },
          { teacher: 'llama-8b', language: 'ar', family: 'olmo', result: 0.38, z_score: -0.5 },
        ],
        anchors: [
          { family: 'olmo', language: 'de', base: 0.45, reference: 0.65 },
          { family: 'olmo', language: 'ar', base: 0.36, reference: 0.35 },
        ],
      }),
    );
    const out = path.join(dir, 'out');
    const res = await runCommand(path.join(ROOT, 'bin/polyglot'), ['score', '--from', file, '--out', out], process.env);
    assert.equal(res.code, 0, res.out);
    // de: PGR (0.6−0.45)/0.2 = 0.75 → PG (0.75+0.8)/2 = 0.775; ar: (0.4−0.36)/(−0.01) = −4 → PG −1.75.
    assert.match(res.out, /gemma-3-27b\s+de\s+olmo\s+0\.6000\s+0\.7500\s+0\.8000\s+0\.7750/);
    assert.match(
      res.out,
      /gemma-3-27b\s+ar\s+olmo\s+0\.4000\s+-4\.0000\s+0\.5000\s+-1\.7500\s+sign-inversion,small-anchor-gap/,
    );
    // Teacher means over languages: gemma (0.775 − 1.75)/2 = −0.4875; llama (−0.275 − 1.25)/2 = −0.7625.
    assert.match(res.out, /1\s+gemma-3-27b\s+-0\.4875/);
    assert.match(res.out, /2\s+llama-8b\s+-0\.7625/);
    const scores = JSON.parse(readFileSync(path.join(out, 'scores.json'), 'utf8')) as {
      cells: { teacher: string; language: string; pg_score: number; pgr: number; z_score: number }[];
    };
    for (const c of scores.cells) assert.ok(Math.abs(c.pg_score - (c.pgr + c.z_score) / 2) < 1e-12);
  });

  it('names the row and column of a bad value', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'pg-score-'));
    const file = path.join(dir, 'results.csv');
    writeFileSync(file, 'teacher,language,family,result,z_score\nt1,de,olmo,abc,0.1\n');
    const res = await runCommand(path.join(ROOT, 'bin/polyglot'), ['score', '--from', file], process.env);
    assert.equal(res.code, 2);
    assert.match(res.out, /row 1 \(line 2\), column "result": expected a number, got "abc"/);
  });

  const cli = (args: string[]) => runCommand(path.join(ROOT, 'bin/polyglot'), args, process.env);
  const examples = [
    '--from',
    path.join(ROOT, 'examples/score-results.csv'),
    '--anchors',
    path.join(ROOT, 'examples/score-anchors.csv'),
  ];

  it("scores examples/ (the paper's table shape: lang, pgr for ja, no S there)", async () => {
    const res = await cli(['score', ...examples]);
    assert.equal(res.code, 0, res.out);
    // de: (0.52 − 0.45)/0.2 = 0.35 → PG (0.35 + 0.8)/2 = 0.575; ja: the given pgr 0.9 → (0.9 + 0.6)/2 = 0.75.
    assert.match(res.out, /google\/gemma-3-27b-it\s+de\s+olmo-3-7b\s+0\.5200\s+0\.3500\s+0\.8000\s+0\.5750/);
    assert.match(res.out, /google\/gemma-3-27b-it\s+ja\s+olmo-3-7b\s+-\s+0\.9000\s+0\.6000\s+0\.7500/);
    // Teacher means: gemma (0.575 + 0.875 + 0.75)/3; llama (−0.35 − 0.125 − 0.4)/3.
    assert.match(res.out, /1\s+google\/gemma-3-27b-it\s+0\.7333\s+3/);
    assert.match(res.out, /2\s+meta-llama\/Llama-3\.1-8B-Instruct\s+-0\.2917\s+3/);
    assert.match(res.out, /used the given pgr of 2 cells without S or anchors/);
  });

  it('--help lists the flags and every column', async () => {
    const res = await cli(['score', '--help']);
    assert.equal(res.code, 0, res.out);
    for (const word of [
      '--small-gap-threshold',
      '--primary-family',
      'language | lang',
      'family',
      'result',
      'pgr',
      'z_score',
      'prompts_distinct_ri',
      'average_perplexity',
      'base (B), reference (R)',
    ]) {
      assert.ok(res.out.includes(word), `--help lacks ${word}:\n${res.out}`);
    }
  });

  it('refuses unknown flags and non-numeric values, with the command help', async () => {
    const unknown = await cli(['score', ...examples, '--alfa', '0.3']);
    assert.equal(unknown.code, 2, unknown.out);
    assert.match(unknown.out, /error: polyglot score: unknown argument\(s\) "--alfa" "0\.3"/);
    assert.match(unknown.out, /usage: polyglot score --from/);
    const notNumber = await cli(['score', ...examples, '--small-gap-threshold', 'tiny']);
    assert.equal(notNumber.code, 2, notNumber.out);
    assert.match(notNumber.out, /--small-gap-threshold needs a number, got "tiny"/);
    const negative = await cli(['score', ...examples, '--small-gap-threshold', '-1']);
    assert.equal(negative.code, 2, negative.out);
    assert.match(negative.out, /smallGapThreshold must be a non-negative number \(got -1\)/);
  });

  it('--small-gap-threshold sets the flag threshold (ar: R − B = 0.04)', async () => {
    const flagged = /google\/gemma-3-27b-it\s+ar\s+olmo-3-7b\s+\S+\s+\S+\s+\S+\s+\S+\s+small-anchor-gap/;
    const dflt = await cli(['score', ...examples]);
    assert.doesNotMatch(dflt.out, flagged);
    const strict = await cli(['score', ...examples, '--small-gap-threshold', '0.05']);
    assert.equal(strict.code, 0, strict.out);
    assert.match(strict.out, flagged);
  });

  it('a results table without a family column is an error that says what to add', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'pg-score-'));
    const file = path.join(dir, 'results.csv');
    writeFileSync(file, 'teacher,lang,result,z_score\nt1,de,0.5,0.1\nt2,de,0.4,-0.1\n');
    const res = await cli(['score', '--from', file, '--anchors', path.join(ROOT, 'examples/score-anchors.csv')]);
    assert.equal(res.code, 2, res.out);
    assert.match(res.out, /header: no "family" column, but the table has "result": add a "family" column/);
  });
});
