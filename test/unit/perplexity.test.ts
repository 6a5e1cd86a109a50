import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { inBatches, paperBatchPerplexity, responseBoundary, type PadSide } from '../../src/metrics/perplexity';
import { PYTHON } from '../support/reference';

/**
 * The paper mode's batch arithmetic against numpy: a padded batch with random logits, labels built as the
 * reference builds them (input ids cloned, the first `boundary` positions ignored from position 0, pads keep
 * their labels) and the mean next-token cross-entropy over every label left. The per-item echoes handed to
 * `paperBatchPerplexity` are the same logits' log-softmax at the real positions.
 */
const BATCH_PY = `
import json, sys
import numpy as np
spec = json.loads(sys.argv[1])
rng = np.random.default_rng(spec["seed"])
V, PAD = 11, 0
lengths, bounds, side = spec["lengths"], spec["boundaries"], spec["side"]
L = max(lengths)
ids = np.full((len(lengths), L), PAD)
real_pos = []  # padded position of each real token, per row
for j, n in enumerate(lengths):
    start = L - n if side == "left" else 0
    ids[j, start:start + n] = rng.integers(1, V, size=n)
    real_pos.append(list(range(start, start + n)))
logits = rng.normal(size=(len(lengths), L, V)) * 2.0
logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
labels = ids.copy()
for j, b in enumerate(bounds):
    labels[j, :b] = -100
def loss(lab):
    nll = [-logp[j, t - 1, lab[j, t]] for j in range(lab.shape[0]) for t in range(1, L) if lab[j, t] != -100]
    return float(np.exp(np.mean(nll)))
# Labels predicted from a pad position, or on a pad: what no echo can score.
pad_term = {}
masked = labels.copy()
for j in range(len(lengths)):
    for t in range(1, L):
        if labels[j, t] == -100: continue
        if t not in real_pos[j] or (t - 1) not in real_pos[j]:
            pad_term[f"{j},{t}"] = float(-logp[j, t - 1, labels[j, t]])
            masked[j, t] = -100
echoes = [[None] + [float(logp[j, p - 1, ids[j, p]]) for p in real_pos[j][1:]] for j in range(len(lengths))]
print(json.dumps({"full": loss(labels), "without_pads": loss(masked), "pad_terms": pad_term, "echoes": echoes,
                  "unscored": len(pad_term)}))
`;

function numpyBatch(seed: number, lengths: number[], boundaries: number[], side: PadSide) {
  if (!existsSync(PYTHON)) throw new Error(`reference interpreter missing: ${PYTHON} (run scripts/setup.sh)`);
  const r = spawnSync(PYTHON, ['-c', BATCH_PY, JSON.stringify({ seed, lengths, boundaries, side })], {
    encoding: 'utf8',
  });
  if (r.status !== 0) throw new Error(`numpy reference failed: ${r.stderr}`);
  return JSON.parse(r.stdout) as {
    full: number;
    without_pads: number;
    pad_terms: Record<string, number>;
    echoes: (number | null)[][];
    unscored: number;
  };
}

describe('perplexity: paper batch mode against numpy', () => {
  const cases: { lengths: number[]; boundaries: number[] }[] = [
    // Prompt longer than a row's padding, shorter, equal; one row needs no padding; one row has no prompt.
    { lengths: [9, 5, 12, 7, 12, 3, 10, 6], boundaries: [4, 2, 6, 3, 1, 2, 9, 0] },
    { lengths: [4, 4, 4], boundaries: [2, 1, 3] },
    { lengths: [15, 2, 8, 11], boundaries: [7, 1, 5, 10] },
  ];
  for (const side of ['left', 'right'] as const)
    cases.forEach(({ lengths, boundaries }, k) => {
      it(`${side} padding, batch ${k}: equals numpy's loss with and without the pad-position labels`, () => {
        const ref = numpyBatch(100 + k, lengths, boundaries, side);
        const items = ref.echoes.map((logprobs, j) => ({ logprobs, boundary: boundaries[j]! }));
        const full = paperBatchPerplexity(items, side, (row, t) => {
          const v = ref.pad_terms[`${row},${t}`];
          assert.ok(v !== undefined, `label (${row}, ${t}) asked for a pad term numpy does not have`);
          return v;
        });
        assert.ok(Math.abs(full.perplexity - ref.full) <= 1e-9 * ref.full, `${full.perplexity} vs ${ref.full}`);
        assert.equal(full.unscored, 0);
        const echoOnly = paperBatchPerplexity(items, side);
        assert.ok(Math.abs(echoOnly.perplexity - ref.without_pads) <= 1e-9 * ref.without_pads);
        assert.equal(echoOnly.unscored, ref.unscored);
        assert.equal(echoOnly.scored + echoOnly.unscored, full.scored);
      });
    });

  it('left padding lets the loss reach prompt tokens of short rows (the mask counts from position 0)', () => {
    // Row 0 has 6 tokens, row 1 has 2 (4 pads on the left): row 1's mask [0, 3) covers only pads, so its
    // "prompt" token at real index 1 is scored.
    const lp = Math.log(0.5);
    const b = paperBatchPerplexity(
      [
        { logprobs: [null, lp, lp, lp, lp, lp], boundary: 3 },
        { logprobs: [null, Math.log(0.25)], boundary: 3 },
      ],
      'left',
    );
    assert.equal(b.scored, 3 + 1);
    assert.ok(Math.abs(b.perplexity - Math.exp((3 * Math.log(2) + Math.log(4)) / 4)) <= 1e-12);
  });

  it('batches are consecutive runs in row order', () => {
    assert.deepEqual(inBatches([1, 2, 3, 4, 5], 2), [[1, 2], [3, 4], [5]]);
    assert.deepEqual(inBatches([], 8), []);
  });
});

describe('perplexity: prompt/response boundary', () => {
  it('counts tokens the server puts in front (a BOS) and moves the boundary past them', () => {
    assert.deepEqual(responseBoundary(10, 4, 10), { leading: 0, boundary: 4 });
    assert.deepEqual(responseBoundary(11, 4, 10), { leading: 1, boundary: 5 });
  });
  it('refuses counts that cannot come from one tokenizer', () => {
    assert.throws(() => responseBoundary(9, 4, 10), /disagree/);
    assert.throws(() => responseBoundary(20, 4, 10), /disagree/);
    assert.throws(() => responseBoundary(10, 11, 10), /disagree/);
  });
});
