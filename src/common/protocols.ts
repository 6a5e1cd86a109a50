import { readFileSync } from 'node:fs';
import path from 'node:path';
import { ErrorType, PolyglotError } from './errors';
import { digestOf, sha256Hex } from './hash';

/**
 * Protocol texts rendered from the paper's own packages into `generated/` (tools/protocols/, run by
 * scripts/setup.sh and the worker image build). They are read at run time rather than compiled in, so
 * the texts a judge was trained on come from the package, never from a copy typed into this repository.
 */

/** Where the rendered files are: `POLYGLOT_PROTOCOLS_DIR` (images), else `generated/` at the package root. */
export function protocolsDir(env: NodeJS.ProcessEnv = process.env): string {
  // This file is lib/src/common/protocols.js once built: the package root is three levels up.
  return env.POLYGLOT_PROTOCOLS_DIR || path.resolve(__dirname, '../../../generated');
}

/** The texts of prometheus-eval's absolute grading, as tools/protocols/render_prometheus.py writes them. */
export interface PrometheusTexts {
  package: string;
  version: string;
  /** System message of `PrometheusEval.absolute_grade`. */
  system: string;
  /** The absolute-grading prompt without a reference answer (`ABSOLUTE_PROMPT_WO_REF`). */
  absolute: string;
  /** `SCORE_RUBRIC_TEMPLATE`: criterion and five level descriptions. */
  rubric: string;
  /** Digest of the three texts: part of the judge's cache key, so a changed text is a new key (a reformatted file is not). */
  digest: string;
}

export const PROMETHEUS_FILE = 'prometheus-eval.json';

const cache = new Map<string, PrometheusTexts>();

export function prometheusTexts(env: NodeJS.ProcessEnv = process.env): PrometheusTexts {
  const file = path.join(protocolsDir(env), PROMETHEUS_FILE);
  const hit = cache.get(file);
  if (hit) return hit;
  const fix =
    'run `bash scripts/setup.sh` (it renders generated/), or point POLYGLOT_PROTOCOLS_DIR at the folder that holds it';
  let raw: string;
  try {
    raw = readFileSync(file, 'utf8');
  } catch (e) {
    throw new PolyglotError(
      ErrorType.InvalidInput,
      `the judge's protocol file ${file} cannot be read (${(e as Error).message}); ${fix}`,
    );
  }
  let doc: { package?: unknown; version?: unknown; texts?: Record<string, unknown>; sha256?: Record<string, unknown> };
  try {
    doc = JSON.parse(raw) as typeof doc;
  } catch (e) {
    throw new PolyglotError(ErrorType.InvalidInput, `${file} is not JSON (${(e as Error).message}); ${fix}`);
  }
  const text = (name: string): string => {
    const v = doc.texts?.[name];
    if (typeof v !== 'string') throw new PolyglotError(ErrorType.InvalidInput, `${file} has no text ${name}; ${fix}`);
    // The renderer records each text's digest: a file edited by hand (or cut short) is refused.
    if (doc.sha256?.[name] !== sha256Hex(v))
      throw new PolyglotError(
        ErrorType.InvalidInput,
        `${file}: text ${name} does not match its recorded sha256; ${fix}`,
      );
    return v;
  };
  const [system, absolute, rubric] = [
    text('ABS_SYSTEM_PROMPT'),
    text('ABSOLUTE_PROMPT_WO_REF'),
    text('SCORE_RUBRIC_TEMPLATE'),
  ];
  const texts: PrometheusTexts = {
    package: String(doc.package),
    version: String(doc.version),
    system,
    absolute,
    rubric,
    digest: digestOf({ system, absolute, rubric }),
  };
  cache.set(file, texts);
  return texts;
}
