import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { renderScoreTable, scoreFromFile } from '../../src/cli/score';
import {
  PCA_FEATURES,
  familyCorrelations,
  leastSquares,
  pca,
  pearson,
  ranks,
  regressOnComponents,
  regularizedIncompleteBeta,
  robustness,
  scoreCohort,
  spearman,
  symmetricEigen,
  type AnchorScores,
  type CellInput,
  type CohortScores,
} from '../../src/scoring';
import { rng } from '../../src/common/random';
import { PYTHON, pythonJson } from '../support/reference';

const TOL = 1e-9;

const TEACHERS = ['gemma-27b', 'aya-32b', 'gemma-12b', 'command-a', 'gemma-4b'];
TEACHERS.push('gpt-4o-mini', 'granite-1b', 'granite-micro', 'llama-70b', 'llama-8b');
const LANGS = ['ar', 'cs', 'de', 'es', 'id', 'ja'];
const FAM_A = 'olmo-3-7b';
const FAM_B = 'qwen-3-8b';
const FAM_B_LANGS = ['ar', 'de', 'id'];

/** 10 teachers × 6 languages under FAM_A (60 cells) plus 10 × 3 under FAM_B, seeded. */
function fixture(): { cells: CellInput[]; anchors: AnchorScores[] } {
  const r = rng('scoring-fixture-v1');
  const cells: CellInput[] = [];
  for (const teacher of TEACHERS) {
    for (const language of LANGS) {
      const intrinsic = {
        prompts_distinct_ri: 0.55 + 0.3 * r(),
        responses_distinct_ri: 0.5 + 0.35 * r(),
        average_rubric_score: 2 + 3 * r(),
        average_perplexity: 3 + 40 * r() ** 2,
        prompts_average_length: 30 + 200 * r(),
        responses_average_length: 100 + 500 * r(),
      };
      cells.push({ teacher, language, family: FAM_A, result: 0.35 + 0.3 * r(), intrinsic });
      if (FAM_B_LANGS.includes(language)) cells.push({ teacher, language, family: FAM_B, result: 0.3 + 0.3 * r() });
    }
  }
  // [family, language, base, reference]: FAM_A/cs is sign-inverted, FAM_A/de has a tiny gap.
  const table: [string, string, number, number][] = [
    [FAM_A, 'ar', 0.4, 0.55],
    [FAM_A, 'cs', 0.5, 0.47],
    [FAM_A, 'de', 0.45, 0.46],
    [FAM_A, 'es', 0.38, 0.6],
    [FAM_A, 'id', 0.42, 0.58],
    [FAM_A, 'ja', 0.36, 0.52],
    [FAM_B, 'ar', 0.35, 0.5],
    [FAM_B, 'de', 0.33, 0.56],
    [FAM_B, 'id', 0.4, 0.52],
  ];
  const anchors = table.map(([family, language, base, reference]) => ({ family, language, base, reference }));
  return { cells, anchors };
}

/** Inputs for the stand-alone function checks (ties on purpose, a 7×7 matrix, a least-squares problem). */
function unitInputs(): Record<string, unknown> {
  const r = rng('scoring-unit-v1');
  const ties = [3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7, 9];
  const y = ties.map((v, i) => (i % 4 === 0 ? 2 : v * 0.7 + r()));
  const b = Array.from({ length: 7 }, () => Array.from({ length: 7 }, () => r() - 0.5));
  const sym = b.map((row, i) => row.map((v, j) => v + b[j]![i]!));
  const lsX = Array.from({ length: 20 }, () => [1, ...Array.from({ length: 4 }, () => r() * 3)]);
  const lsY = lsX.map((row) => row[1]! - 2 * row[3]! + r());
  const betaGrid: [number, number, number][] = [];
  for (const [a, bb] of [
    [0.5, 0.5],
    [1, 0.5],
    [2.5, 0.5],
    [29, 0.5],
    [0.5, 29],
    [5, 7],
    [100, 0.5],
    [499, 0.5],
  ]) {
    for (const x of [1e-6, 0.001, 0.1, 0.3, 0.5, 0.7, 0.9, 0.99, 0.999999]) betaGrid.push([x, a!, bb!]);
  }
  return { ties, y, sym, lsX, lsY, betaGrid };
}

// Independent reference: numpy / scipy / scikit-learn recompute every number from the raw fixture.
const REFERENCE_PY = String.raw`
import json, math, sys
import numpy as np
from scipy import special, stats
from sklearn.decomposition import PCA
from sklearn.linear_model import LinearRegression
from sklearn.metrics import mean_squared_error, r2_score
from sklearn.preprocessing import StandardScaler

fx = json.load(open(sys.argv[1]))
cells, anchors, alpha, fams = fx['cells'], fx['anchors'], fx['alpha'], fx['families']
key = lambda c: c['teacher'] + '|' + c['language']
fkey = lambda c: key(c) + '|' + c['family']
intr, order = {}, []
for c in cells:
    if 'intrinsic' in c and key(c) not in intr:
        intr[key(c)] = c['intrinsic']; order.append(key(c))
X4 = np.array([[intr[k]['prompts_distinct_ri'], intr[k]['responses_distinct_ri'], intr[k]['average_rubric_score'],
                -np.log(1 + intr[k]['average_perplexity'])] for k in order])
Z4 = StandardScaler().fit_transform(X4)
z = dict(zip(order, Z4.mean(axis=1).tolist()))
out = {'z': z, 'zFeatures': dict(zip(order, Z4.tolist())), 'zMean': float(np.mean(list(z.values())))}
anc = {(a['family'], a['language']): (a['base'], a['reference']) for a in anchors}
pgr, pg, flags = {}, {}, {}
for c in cells:
    B, R = anc[(c['family'], c['language'])]
    flags[fkey(c)] = (['sign-inversion'] if R - B <= 0 else []) + (['small-anchor-gap'] if abs(R - B) < 0.02 else [])
    pgr[fkey(c)] = (c['result'] - B) / (R - B)
    pg[fkey(c)] = alpha * z[key(c)] + (1 - alpha) * pgr[fkey(c)]
out.update(pgr=pgr, pg=pg, flags=flags, teachers={})
for fam in fams:
    by = {}
    for c in cells:
        if c['family'] == fam: by.setdefault(c['teacher'], []).append(pg[fkey(c)])
    means = {t: float(np.mean(v)) for t, v in by.items()}
    ranked = sorted(means, key=lambda t: -means[t])
    out['teachers'][fam] = {t: {'pg': means[t], 'rank': ranked.index(t) + 1, 'languages': len(by[t])} for t in means}
rows = [c for c in cells if c['family'] == fams[0]]
feats = fx['pcaFeatures']
Xs = StandardScaler().fit_transform(np.array([[intr[key(c)][f] for f in feats] for c in rows]))
y = np.array([c['result'] for c in rows])
p = PCA(n_components=6).fit(Xs)
S = p.transform(Xs)
lr = LinearRegression().fit(S, y)
pred = lr.predict(S)
out['pca'] = {'evr': p.explained_variance_ratio_.tolist(), 'cum': np.cumsum(p.explained_variance_ratio_).tolist(),
              'components': p.components_.tolist(), 'r2': float(r2_score(y, pred)),
              'rmse': float(math.sqrt(mean_squared_error(y, pred))), 'intercept': float(lr.intercept_),
              'coef': lr.coef_.tolist(), 'n': len(rows)}
alphas = [0, 0.25, 0.5, 0.75, 1]
zA = np.array([z[key(c)] for c in rows]); pA = np.array([pgr[fkey(c)] for c in rows])
P = [a * zA + (1 - a) * pA for a in alphas]
sp = [[stats.spearmanr(P[i], P[j]) for j in range(5)] for i in range(5)]
zp = stats.spearmanr(zA, pA)
out['robust'] = {'rho': [[float(s.statistic) for s in r] for r in sp], 'p': [[float(s.pvalue) for s in r] for r in sp],
                 'zVsPgr': [float(zp.statistic), float(zp.pvalue)]}
per = {f: {} for f in fams}
for c in cells: per[c['family']].setdefault(c['teacher'], {})[c['language']] = pg[fkey(c)]
out['families'] = []
for i in range(len(fams)):
    for j in range(i + 1, len(fams)):
        a, b = per[fams[i]], per[fams[j]]
        xs, ys = [], []
        for t in a:
            shared = [l for l in a[t] if t in b and l in b[t]]
            if shared:
                xs.append(np.mean([a[t][l] for l in shared])); ys.append(np.mean([b[t][l] for l in shared]))
        s = stats.spearmanr(xs, ys)
        out['families'].append([fams[i], fams[j], float(s.statistic), float(s.pvalue), len(xs)])
u = fx['unit']
w, V = np.linalg.eigh(np.array(u['sym']))
sx = stats.spearmanr(u['ties'], u['y'])
out['unit'] = {'rankdata': stats.rankdata(u['ties']).tolist(), 'spearman': [float(sx.statistic), float(sx.pvalue)],
               'pearson': float(stats.pearsonr(u['ties'], u['y']).statistic),
               'eigvals': w[::-1].tolist(), 'eigvecs': V[:, ::-1].T.tolist(),
               'lstsq': np.linalg.lstsq(np.array(u['lsX']), np.array(u['lsY']), rcond=None)[0].tolist(),
               'betainc': [float(special.betainc(a, b, x)) for x, a, b in u['betaGrid']]}
print(json.dumps(out))
`;

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Reference = any;

function runReference(fx: Record<string, unknown>): Reference {
  return pythonJson<Reference>(PYTHON, ['-c', REFERENCE_PY], fx, 'scripts/setup.sh');
}

function close(actual: number | undefined, expected: number, tol: number, label: string): void {
  assert.ok(actual !== undefined && Math.abs(actual - expected) <= tol, `${label}: ${actual} vs ${expected}`);
}

/** Vectors equal up to a common sign; returns the sign used. */
function closeUpToSign(actual: number[], expected: number[], tol: number, label: string): number {
  const s = actual.reduce((acc, v, i) => acc + v * expected[i]!, 0) >= 0 ? 1 : -1;
  actual.forEach((v, i) => close(s * v, expected[i]!, tol, `${label}[${i}]`));
  return s;
}

describe('scoring against numpy / scipy / scikit-learn', function () {
  this.timeout(120_000);
  const { cells, anchors } = fixture();
  const unit = unitInputs();
  let ref: Reference;
  let cohort: CohortScores;
  const cellOf = (t: string, l: string, f: string) =>
    cohort.cells.find((c) => c.teacher === t && c.language === l && c.family === f)!;

  before(() => {
    cohort = scoreCohort(cells, anchors);
    ref = runReference({ cells, anchors, alpha: 0.5, families: [FAM_A, FAM_B], pcaFeatures: PCA_FEATURES, unit });
  });

  it('uses ≥ 60 cells with one sign-inverted and one small-gap language', () => {
    assert.equal(cohort.cells.length, 90);
    assert.equal(cohort.cells.filter((c) => c.family === FAM_A).length, 60);
  });

  it('z, its features and the z mean match StandardScaler', () => {
    close(ref.zMean, 0, 1e-12, 'python z mean');
    const seen = new Set<string>();
    for (const c of cohort.cells) {
      const k = `${c.teacher}|${c.language}`;
      close(c.z_score, ref.z[k], TOL, `z ${k}`);
      c.z_features!.forEach((v, j) => close(v, ref.zFeatures[k][j], TOL, `z feature ${j} ${k}`));
      seen.add(k);
    }
    assert.equal(seen.size, 60);
    close(cohort.cells.filter((c) => c.family === FAM_A).reduce((s, c) => s + c.z_score, 0) / 60, 0, TOL, 'z mean');
  });

  it('PGR, PG, flags and warnings match, exactly for flags', () => {
    for (const c of cohort.cells) {
      const k = `${c.teacher}|${c.language}|${c.family}`;
      close(c.pgr, ref.pgr[k], TOL, `pgr ${k}`);
      close(c.pg_score, ref.pg[k], TOL, `pg ${k}`);
      assert.deepEqual(c.flags, ref.flags[k], `flags ${k}`);
    }
    assert.deepEqual(cellOf('aya-32b', 'cs', FAM_A).flags, ['sign-inversion']);
    assert.deepEqual(cellOf('aya-32b', 'de', FAM_A).flags, ['small-anchor-gap']);
    assert.equal(cohort.warnings.length, 2, cohort.warnings.join('\n'));
    assert.match(cohort.warnings.find((w) => w.startsWith(`${FAM_A}/cs:`)) ?? '', /sign inversion.*10 cells/);
    assert.match(cohort.warnings.find((w) => w.startsWith(`${FAM_A}/de:`)) ?? '', /small anchor gap/);
  });

  it('teacher scores and ranks per family match', () => {
    assert.equal(cohort.teachers.length, 20);
    for (const t of cohort.teachers) {
      const r = ref.teachers[t.family!][t.teacher];
      close(t.pg_score, r.pg, TOL, `teacher ${t.family}/${t.teacher}`);
      assert.equal(t.rank, r.rank, `rank ${t.family}/${t.teacher}`);
      assert.equal(t.languages, r.languages);
    }
  });

  it('PCA matches sklearn (ratios, cumulative, components up to sign) and the regression LinearRegression', () => {
    const p = cohort.analyses.pca!;
    assert.deepEqual(p.features, [...PCA_FEATURES]);
    assert.equal(p.n, 60);
    p.explainedVarianceRatio.forEach((v, i) => close(v, ref.pca.evr[i], TOL, `evr ${i}`));
    p.cumulative.forEach((v, i) => close(v, ref.pca.cum[i], TOL, `cumulative ${i}`));
    const signs = p.loadings.map((row, i) => closeUpToSign(row, ref.pca.components[i], TOL, `component ${i}`));
    const reg = cohort.analyses.regression!;
    assert.equal(reg.n, 60);
    assert.equal(reg.family, FAM_A);
    close(reg.r2, ref.pca.r2, TOL, 'R²');
    close(reg.rmse, ref.pca.rmse, TOL, 'RMSE');
    close(reg.intercept, ref.pca.intercept, TOL, 'intercept');
    reg.coefficients.forEach((v, i) => close(signs[i]! * v, ref.pca.coef[i], TOL, `coefficient ${i}`));
    // The exported pieces, called directly, give what analyze reported.
    const rows = cells.filter((c) => c.family === FAM_A);
    const fit = pca(rows.map((c) => c.intrinsic!));
    assert.deepEqual(fit.loadings, p.loadings);
    const direct = regressOnComponents(
      fit.scores,
      rows.map((c) => c.result!),
    );
    assert.equal(direct.r2, reg.r2);
  });

  it('robustness ρ and p match spearmanr for every α pair and for z vs PGR', () => {
    const rob = cohort.analyses.robustness!;
    assert.deepEqual(rob.alphas, [0, 0.25, 0.5, 0.75, 1]);
    assert.equal(rob.n, 60);
    for (let i = 0; i < 5; i++) {
      for (let j = 0; j < 5; j++) {
        close(rob.spearman[i]![j], ref.robust.rho[i][j], TOL, `rho ${i},${j}`);
        close(rob.pValues[i]![j], ref.robust.p[i][j], TOL, `p ${i},${j}`);
      }
    }
    close(rob.zVsPgr.rho, ref.robust.zVsPgr[0], TOL, 'rho z/pgr');
    close(rob.zVsPgr.p, ref.robust.zVsPgr[1], TOL, 'p z/pgr');
    // Direct call agrees with the one analyze made.
    assert.deepEqual(robustness(cohort.cells.filter((c) => c.family === FAM_A)).spearman, rob.spearman);
  });

  it('family correlations match spearmanr over shared teachers and languages', () => {
    const fams = familyCorrelations(cohort.cells);
    assert.deepEqual(fams, cohort.analyses.families);
    assert.equal(fams.length, 1);
    const [a, b, rho, p, n] = ref.families[0];
    assert.deepEqual([fams[0]!.a, fams[0]!.b, fams[0]!.teachers], [a, b, n]);
    close(fams[0]!.rho, rho, TOL, 'family rho');
    close(fams[0]!.p, p, TOL, 'family p');
  });

  it('stats and linalg building blocks match scipy/numpy', () => {
    const u = unit as { ties: number[]; y: number[]; sym: number[][]; lsX: number[][]; lsY: number[] };
    assert.deepEqual(ranks(u.ties), ref.unit.rankdata);
    const s = spearman(u.ties, u.y);
    close(s.rho, ref.unit.spearman[0], TOL, 'spearman with ties');
    close(s.p, ref.unit.spearman[1], TOL, 'spearman p with ties');
    close(pearson(u.ties, u.y), ref.unit.pearson, TOL, 'pearson');
    const eig = symmetricEigen(u.sym);
    eig.values.forEach((v, i) => close(v, ref.unit.eigvals[i], TOL, `eigenvalue ${i}`));
    eig.vectors.forEach((v, i) => closeUpToSign(v, ref.unit.eigvecs[i], TOL, `eigenvector ${i}`));
    for (const v of eig.vectors) {
      const big = v.reduce((bi, x, i) => (Math.abs(x) > Math.abs(v[bi]!) ? i : bi), 0);
      assert.ok(v[big]! > 0, 'largest-magnitude entry is positive');
    }
    leastSquares(u.lsX, u.lsY).coefficients.forEach((v, i) => close(v, ref.unit.lstsq[i], TOL, `lstsq ${i}`));
    (unit.betaGrid as [number, number, number][]).forEach(([x, a, b], i) =>
      close(regularizedIncompleteBeta(x, a, b), ref.unit.betainc[i], 1e-12, `I_${x}(${a}, ${b})`),
    );
  });
});

describe('scoring: closed forms and invariants', () => {
  // Features chosen so each standardizes to ∓√1.5 or 0; rubric runs against the others.
  const s = Math.sqrt(1.5);
  const rec = (v: number, rubric: number) => ({
    prompts_distinct_ri: v,
    responses_distinct_ri: v,
    average_rubric_score: rubric,
    average_perplexity: Math.exp(-v) - 1,
    prompts_average_length: 10,
    responses_average_length: 20,
  });
  const three: CellInput[] = [
    { teacher: 't1', language: 'xx', family: 'f', result: 0.5, intrinsic: rec(0, 3) },
    { teacher: 't2', language: 'xx', family: 'f', result: 0.6, intrinsic: rec(1, 2) },
    { teacher: 't3', language: 'xx', family: 'f', result: 0.4, intrinsic: rec(2, 1) },
  ];
  const anchor: AnchorScores[] = [{ family: 'f', language: 'xx', base: 0.4, reference: 0.6 }];

  it('reproduces a hand-computed 3-cell example', () => {
    const c = scoreCohort(three, anchor);
    const z = [-s / 2, 0, s / 2];
    const pgr = [0.5, 1, 0];
    c.cells.forEach((cell, i) => {
      close(cell.z_score, z[i]!, 1e-12, `z ${i}`);
      close(cell.pgr, pgr[i]!, 1e-12, `pgr ${i}`);
      close(cell.pg_score, (pgr[i]! + z[i]!) / 2, 1e-12, `pg ${i}`);
    });
    assert.deepEqual(
      c.teachers.map((t) => [t.teacher, t.rank]),
      [
        ['t2', 1],
        ['t3', 2],
        ['t1', 3],
      ],
    );
    assert.ok(c.warnings.some((w) => /prompts_average_length|constant/.test(w)) === false);
  });

  it('holds the invariants on the fixture cohort and for another α', () => {
    const { cells, anchors } = fixture();
    for (const alpha of [0.5, 0.3]) {
      const c = scoreCohort(cells, anchors, { alpha });
      for (const cell of c.cells) close(cell.pg_score, alpha * cell.z_score + (1 - alpha) * cell.pgr!, 1e-12, 'pg');
      const dataCells = c.cells.filter((x) => x.family === FAM_A);
      close(dataCells.reduce((a, x) => a + x.z_score, 0) / dataCells.length, 0, 1e-12, 'mean z');
      for (let j = 0; j < 4; j++) {
        const col = dataCells.map((x) => x.z_features![j]!);
        const m = col.reduce((a, b) => a + b, 0) / col.length;
        close(Math.sqrt(col.reduce((a, b) => a + (b - m) ** 2, 0) / col.length), 1, 1e-12, `std ${j}`);
      }
    }
  });

  it('uses a given z as is (paper-table mode): pg = (pgr + z)/2 exactly', () => {
    const r = rng('given-z');
    const cells: CellInput[] = LANGS.map((language, i) => ({
      teacher: `t${i % 3}`,
      language,
      family: 'f',
      result: r(),
      z_score: r() * 2 - 1,
    }));
    const anchors = LANGS.map((language) => ({ family: 'f', language, base: 0.1, reference: 0.7 + r() * 0.1 }));
    const c = scoreCohort(cells, anchors);
    c.cells.forEach((cell, i) => {
      assert.equal(cell.z_score, cells[i]!.z_score);
      assert.equal(cell.pg_score, (cell.pgr! + cell.z_score) / 2);
    });
  });

  it('warns per cell where judge answers were cut by the length limit, and nowhere else', () => {
    const cut = three.map((c, i) => ({
      ...c,
      intrinsic: { ...c.intrinsic!, rubric_truncated: i === 1 ? 3 : 0, rubric_unparsed: 2 },
    }));
    const judged = scoreCohort(cut, anchor).warnings.filter((w) => /judge answer/.test(w));
    assert.deepEqual(judged, [
      't2/xx: 3 judge answer(s) were cut by the length limit before a verdict and scored 1; raise metrics.judge.maxTokens',
    ]);
    assert.equal(scoreCohort(three, anchor).warnings.filter((w) => /judge answer/.test(w)).length, 0);
  });

  it('refuses a cohort mixing intrinsic metrics and given z', () => {
    const mixed = [...three, { teacher: 't4', language: 'xx', family: 'f', result: 0.5, z_score: 0.1 }];
    assert.throws(() => scoreCohort(mixed, anchor), /mixed z inputs/);
  });

  it('flags missing anchors and results, zeroes a constant feature, and still reports z', () => {
    const cells: CellInput[] = three.map((c) => ({ ...c, intrinsic: { ...c.intrinsic!, average_rubric_score: 4 } }));
    cells.push({ teacher: 't1', language: 'yy', family: 'f', result: 0.5, intrinsic: rec(3, 4) });
    delete cells[1]!.result;
    const c = scoreCohort(cells, anchor);
    assert.deepEqual(
      c.cells.map((x) => x.flags),
      [[], ['missing-result'], [], ['missing-anchor']],
    );
    assert.equal(c.cells[1]!.pg_score, undefined);
    assert.ok(Number.isFinite(c.cells[1]!.z_score));
    assert.ok(c.cells.every((x) => x.z_features![2] === 0));
    assert.ok(c.warnings.some((w) => /average_rubric_score is constant/.test(w)));
    assert.ok(c.warnings.some((w) => w.startsWith('f/yy:') && /no base\/reference anchor/.test(w)));
    assert.ok(c.warnings.some((w) => w.startsWith('f/xx:') && /missing student result/.test(w)));
    assert.equal(
      c.teachers.find((t) => t.teacher === 't2'),
      undefined,
    );
  });
});

describe('score CLI (scoreFromFile, renderScoreTable)', () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(path.join(os.tmpdir(), 'score-cli-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const write = (name: string, text: string): string => {
    const file = path.join(dir, name);
    writeFileSync(file, text);
    return file;
  };

  it('scores a CSV with an anchors CSV and writes the outputs', async () => {
    const results = write(
      'results.csv',
      [
        'teacher,language,family,result,z_score,pg_score',
        '"Gemma 3, 27B",ar,olmo,0.55,0.4,0.9',
        'Llama 8B,ar,olmo,0.42,-0.4,',
        '"Gemma 3, 27B",cs,olmo,0.5,0.2,',
        'Llama 8B,cs,olmo,0.52,-0.2,',
      ].join('\r\n') + '\r\n',
    );
    const anchorsFile = write('anchors.csv', 'family,language,base,reference\nolmo,ar,0.4,0.6\nolmo,cs,0.5,0.49\n');
    const out = path.join(dir, 'out');
    const c = await scoreFromFile(results, { anchorsFile, out });
    close(c.cells[0]!.pgr, 0.75, 1e-12, 'pgr');
    assert.equal(c.cells[0]!.pg_score, (c.cells[0]!.pgr! + 0.4) / 2);
    assert.deepEqual(c.cells[2]!.flags, ['sign-inversion', 'small-anchor-gap']);
    assert.deepEqual(
      c.teachers.map((t) => [t.teacher, t.rank, t.languages]),
      [
        ['Gemma 3, 27B', 1, 2],
        ['Llama 8B', 2, 2],
      ],
    );
    assert.ok(c.warnings.some((w) => /ignored column\(s\) pg_score/.test(w)));
    const text = renderScoreTable(c);
    assert.match(text, /Leaderboard: olmo/);
    assert.match(text, /sign-inversion,small-anchor-gap/);
    assert.deepEqual(JSON.parse(readFileSync(path.join(out, 'scores.json'), 'utf8')).teachers, c.teachers);
    assert.equal(readFileSync(path.join(out, 'scores.txt'), 'utf8'), text);
  });

  it('scores a JSON results file the same way', async () => {
    const { cells, anchors } = fixture();
    const file = write('results.json', JSON.stringify({ cells, anchors }));
    const c = await scoreFromFile(file, { alpha: 0.25 });
    assert.equal(c.options.alpha, 0.25);
    assert.deepEqual(c.teachers, scoreCohort(cells, anchors, { alpha: 0.25 }).teachers);
  });

  it('names the row and column of malformed input', async () => {
    const anchorsFile = write('anchors.csv', 'family,language,base,reference\nolmo,ar,0.4,0.6\n');
    const bad = write('bad.csv', 'teacher,language,family,result,z_score\na,ar,olmo,0.5,0.1\nb,ar,olmo,abc,0.2\n');
    await assert.rejects(scoreFromFile(bad, { anchorsFile }), /row 2 \(line 3\), column "result": expected a number/);
    const good = write('good.csv', 'teacher,language,family,result,z_score\na,ar,olmo,0.5,0.1\n');
    const badAnchor = write('a2.csv', 'family,language,base,reference\nolmo,ar,,0.6\n');
    await assert.rejects(scoreFromFile(good, { anchorsFile: badAnchor }), /row 1 \(line 2\), column "base"/);
    const partial = write('p.csv', 'teacher,language,family,result,prompts_distinct_ri\na,ar,olmo,0.5,0.7\n');
    await assert.rejects(scoreFromFile(partial, { anchorsFile }), /row 1 \(line 2\), column "responses_distinct_ri"/);
    const json = write('bad.json', JSON.stringify({ cells: [{ teacher: 'a', language: 'ar', result: 'x' }] }));
    await assert.rejects(scoreFromFile(json, {}), /cells row 1, column "result"/);
  });

  // The paper's published table: `lang`, a `pgr` column (alone for some cells), maybe no `family`.
  describe("the paper's table as published", () => {
    const anchorsCsv = 'family,language,base,reference\nolmo,ar,0.4,0.6\nolmo,de,0.5,0.54\n';

    it('reads `lang` as `language`, in results and anchors, CSV and JSON alike', async () => {
      const rows = ['a,ar,olmo,0.55,0.4', 'b,ar,olmo,0.42,-0.4', 'a,de,olmo,0.53,0.1', 'b,de,olmo,0.51,-0.1'];
      const byLanguage = await scoreFromFile(
        write('language.csv', ['teacher,language,family,result,z_score', ...rows].join('\n')),
        { anchorsFile: write('anchors.csv', anchorsCsv) },
      );
      const byLang = await scoreFromFile(
        write('lang.csv', ['teacher,lang,family,result,z_score', ...rows].join('\n')),
        {
          anchorsFile: write('anchors-lang.csv', anchorsCsv.replace('family,language', 'family,lang')),
        },
      );
      assert.deepEqual(byLang.cells, byLanguage.cells);
      assert.ok(!byLang.warnings.some((w) => /ignored column/.test(w)), byLang.warnings.join('; '));
      const json = write(
        'lang.json',
        JSON.stringify({
          cells: rows.map((r) => {
            const [teacher, lang, family, result, z] = r.split(',');
            return { teacher, lang, family, result: Number(result), z_score: Number(z) };
          }),
          anchors: [
            { family: 'olmo', lang: 'ar', base: 0.4, reference: 0.6 },
            { family: 'olmo', lang: 'de', base: 0.5, reference: 0.54 },
          ],
        }),
      );
      assert.deepEqual((await scoreFromFile(json)).cells, byLanguage.cells);
    });

    it('refuses `lang` and `language` together', async () => {
      const f = write('both.csv', 'teacher,lang,language,z_score\na,ar,ar,0.1\nb,ar,ar,-0.1\n');
      await assert.rejects(scoreFromFile(f), /header: columns "lang" and "language" are the same column; keep one/);
    });

    it('refuses results without a family column, saying what to add (it used to drop every row)', async () => {
      const f = write('nofamily.csv', 'teacher,lang,result,z_score\na,ar,0.55,0.4\nb,ar,0.42,-0.4\n');
      await assert.rejects(
        scoreFromFile(f, { anchorsFile: write('anchors.csv', anchorsCsv) }),
        /header: no "family" column, but the table has "result": add a "family" column naming, on each row, the student family/,
      );
      const pgrOnly = write('nofamily-pgr.csv', 'teacher,lang,pgr,z_score\na,ja,0.9,0.4\nb,ja,0.1,-0.4\n');
      await assert.rejects(scoreFromFile(pgrOnly), /no "family" column, but the table has "pgr"/);
      const emptyField = write(
        'emptyfamily.csv',
        'teacher,lang,family,result,z_score\na,ar,olmo,0.55,0.4\nb,ar,,0.42,-0.4\n',
      );
      await assert.rejects(
        scoreFromFile(emptyField, { anchorsFile: write('anchors.csv', anchorsCsv) }),
        /row 2 \(line 3\), column "family": required when "result" or "pgr" is given: add the student family/,
      );
      const json = write('nofamily.json', JSON.stringify({ cells: [{ teacher: 'a', lang: 'ar', result: 0.5 }] }));
      await assert.rejects(
        scoreFromFile(json),
        /cells row 1, column "family": required when "result" or "pgr" is given/,
      );
      // A z-only table (no results) still needs no family: teachers are ranked by z.
      const zOnly = await scoreFromFile(write('z.csv', 'teacher,lang,z_score\na,ar,0.4\nb,ar,-0.4\n'));
      assert.deepEqual(
        zOnly.cells.map((c) => [c.teacher, c.z_score]),
        [
          ['a', 0.4],
          ['b', -0.4],
        ],
      );
    });

    it('takes a given pgr where S or the anchors are missing, and only compares it otherwise', async () => {
      const f = write(
        'pgr.csv',
        [
          'teacher,lang,family,result,pgr,z_score',
          'a,ar,olmo,0.55,0.75,0.4', // (0.55 − 0.4)/0.2 = 0.75: agrees
          'b,ar,olmo,0.42,0.5,-0.4', // computed 0.1 ≠ 0.5: the computed value wins, with a warning
          'a,ja,olmo,,0.9,0.6', // no S (and no ja anchors): the given pgr stands in
          'b,ja,olmo,,-0.2,-0.6',
        ].join('\n'),
      );
      const c = await scoreFromFile(f, { anchorsFile: write('anchors.csv', anchorsCsv) });
      const cell = (t: string, l: string) => c.cells.find((x) => x.teacher === t && x.language === l)!;
      close(cell('a', 'ar').pgr, 0.75, 1e-12, 'a/ar pgr');
      close(cell('b', 'ar').pgr, 0.1, 1e-12, 'b/ar pgr');
      assert.equal(cell('a', 'ja').pgr, 0.9);
      assert.equal(cell('a', 'ja').pg_score, (0.9 + 0.6) / 2);
      assert.deepEqual(cell('a', 'ja').flags, []);
      assert.equal(cell('b', 'ja').pg_score, (-0.2 - 0.6) / 2);
      assert.ok(
        c.warnings.some((w) => /used the given pgr of 2 cells without S or anchors: a\/ja\/olmo, b\/ja\/olmo/.test(w)),
      );
      assert.ok(c.warnings.some((w) => /the given pgr of 1 cells differs .* computed value: b\/ar\/olmo$/.test(w)));
      // Only pgr, no result anywhere: no anchors file is needed.
      const only = await scoreFromFile(
        write('only.csv', 'teacher,lang,family,pgr,z_score\na,ja,olmo,0.9,0.6\nb,ja,olmo,-0.2,-0.6\n'),
      );
      assert.deepEqual(
        only.teachers.map((t) => [t.teacher, t.rank, t.pg_score]),
        [
          ['a', 1, 0.75],
          ['b', 2, -0.4],
        ],
      );
    });

    it('flags small anchor gaps at the threshold given', async () => {
      const f = write('gap.csv', 'teacher,lang,family,result,z_score\na,de,olmo,0.53,0.1\nb,de,olmo,0.51,-0.1\n');
      const anchorsFile = write('anchors.csv', anchorsCsv); // de: R − B = 0.04
      assert.deepEqual((await scoreFromFile(f, { anchorsFile })).cells[0]!.flags, []);
      const strict = await scoreFromFile(f, { anchorsFile, smallGapThreshold: 0.05 });
      assert.deepEqual(strict.cells[0]!.flags, ['small-anchor-gap']);
      assert.equal(strict.options.smallGapThreshold, 0.05);
    });
  });
});
