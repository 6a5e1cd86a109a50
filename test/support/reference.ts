import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ROOT } from './stack';

/** numpy in the tools venv: independent reference computations for the tests. */
export const PYTHON = path.join(ROOT, '.tools/venv/bin/python');

/** distinct-RI by its N×N definition (docs/method.md, "Distinct-RI"), computed by numpy: one value per vector set. */
const DISTINCT_PY = `
import json, sys
import numpy as np
out = []
for vecs in json.load(open(sys.argv[1])):
    E = np.array(vecs, dtype=np.float64)
    n = E.shape[0]
    norms = np.linalg.norm(E, axis=1)
    with np.errstate(divide='ignore', invalid='ignore'):
        S = (E @ E.T) / np.outer(norms, norms)
    S[np.isnan(S)] = 0.0
    np.fill_diagonal(S, 0.0)
    out.append(float(1.0 - S.sum() / (n * (n - 1))))
print(json.dumps(out))
`;

/**
 * Run a reference Python (`args`: `-c <script>` or a script path) with `input` written as JSON to a temporary file
 * passed as its last argument; its stdout is parsed as JSON. `setup` names the script that installs `python`.
 */
export function pythonJson<T>(
  python: string,
  args: string[],
  input: unknown,
  setup: string,
  env?: NodeJS.ProcessEnv,
): T {
  if (!existsSync(python)) throw new Error(`reference interpreter missing: ${python} (run ${setup})`);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'py-ref-'));
  try {
    const file = path.join(dir, 'input.json');
    writeFileSync(file, JSON.stringify(input));
    const r = spawnSync(python, [...args, file], { encoding: 'utf8', maxBuffer: 256 << 20, env: env ?? process.env });
    if (r.status !== 0) throw new Error(`reference script failed (${r.status}): ${r.stderr}`);
    return JSON.parse(r.stdout) as T;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export function numpyDistinct(sets: number[][][]): number[] {
  return pythonJson<number[]>(PYTHON, ['-c', DISTINCT_PY], sets, 'scripts/setup.sh');
}

/** The Python jobs' venv: numpy and pandas at the versions the jobs pin (jobs/requirements.lock). */
export const ML_PYTHON = path.join(ROOT, '.tools/ml-venv/bin/python');

/** Run a Python script with one JSON argument file in the jobs' venv; its stdout parsed as JSON. */
export function runMlPython<T>(script: string, input: unknown): T {
  return pythonJson<T>(ML_PYTHON, ['-c', script], input, 'scripts/setup-ml.sh');
}

/**
 * Per-item response perplexity computed directly by transformers (test/support/perplexity_reference.py) on the
 * model in `.tools/models/<gguf>`, loaded by transformers itself in float32. `bos`: put the BOS token in front.
 */
export function transformersPerplexity(
  gguf: string,
  items: { prompt: string; response: string }[],
  bos: boolean,
): number[] {
  return pythonJson<number[]>(
    ML_PYTHON,
    [path.join(ROOT, 'test/support/perplexity_reference.py')],
    { model: path.join(ROOT, '.tools/models'), gguf_file: gguf, bos, items },
    'scripts/setup-ml.sh',
    { ...process.env, HF_HUB_OFFLINE: '1', TQDM_DISABLE: '1' },
  );
}
