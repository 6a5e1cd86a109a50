import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { ChatMessage } from '../../src/llm/client';
import { prometheusTexts, protocolsDir, type PrometheusTexts } from '../../src/common/protocols';
import {
  DEFAULT_JUDGE_TEMPLATE,
  judgeOutcome,
  judgeRequest,
  judgeSettings,
  parsePrometheusAbsolute,
  readVerdict,
} from '../../src/metrics/judge';
import { PAPER_RUBRIC } from '../../src/metrics/paper-rubric';
import { formatPy } from '../../src/metrics/pyformat';
import { digestOf } from '../../src/common/hash';
import { parseSweepSpec, withJudgeAsBegun, type SweepSpecInput } from '../../src/spec/sweep';
import { ROOT } from '../support/stack';

/**
 * The rubric judge against prometheus-eval itself (docs/method.md, "Rubric judge"): the installed package
 * (scripts/setup.sh puts it in .tools/protocol-venv) renders the messages through `PrometheusEval.absolute_grade`
 * and reads verdicts with its own parser; the worker's messages and verdicts must be the same, byte for byte.
 */

const PROTOCOL_PYTHON = path.join(ROOT, '.tools/protocol-venv/bin/python');
const REFERENCE = path.join(ROOT, 'test/support/prometheus_reference.py');

interface Reference {
  version: string;
  messages: ChatMessage[][];
  verdicts: (number | null)[];
  formats: ({ ok: string } | { error: string })[];
}

function reference(request: {
  items: { instruction: string; response: string; rubric: Record<string, string> }[];
  outputs: string[];
  formats: { template: string; values: Record<string, string> }[];
}): Reference {
  if (!existsSync(PROTOCOL_PYTHON))
    throw new Error(`${PROTOCOL_PYTHON} is missing: run \`bash scripts/setup.sh\` (it installs prometheus-eval)`);
  const r = spawnSync(PROTOCOL_PYTHON, [REFERENCE], {
    input: JSON.stringify(request),
    encoding: 'utf8',
    maxBuffer: 64 << 20,
  });
  if (r.status !== 0) throw new Error(`prometheus-eval reference failed (${r.status}): ${r.stderr}`);
  return JSON.parse(r.stdout) as Reference;
}

/** The English names the study put into the rubric (langcodes' display names of the six codes). */
const STUDY_NAMES: Record<string, string> = {
  ar: 'Arabic',
  ja: 'Japanese',
  cs: 'Czech',
  de: 'German',
  id: 'Indonesian',
  es: 'Spanish',
};

/** Items chosen to break a naive renderer: braces, format-like fields, newlines, CRLF, tabs, emoji, RTL, empty. */
const ITEMS: { language: string; instruction: string; response: string }[] = [
  { language: 'ar', instruction: 'اكتب قصيدة قصيرة عن البحر.', response: 'البحر أزرق،\nوالموج يغني للقمر.' },
  { language: 'ja', instruction: '日本の首都はどこですか？', response: '東京です。{注意} 🗼' },
  {
    language: 'cs',
    instruction: 'Vysvětli rozdíl mezi {a} a {{b}}.',
    response: 'Řešení: f(x) = {x | x > 0}\n\nKonec.',
  },
  {
    language: 'de',
    instruction: 'Schreibe eine E-Mail.\n\n- Punkt 1\n- Punkt 2\n',
    response: 'Sehr geehrte Damen und Herren,\n\nich schreibe Ihnen …\n\nMit freundlichen Grüßen',
  },
  { language: 'id', instruction: 'Apa ibu kota Indonesia?', response: '' },
  { language: 'es', instruction: '¿Qué hora es?', response: ' \n ' },
  { language: 'es', instruction: '{instruction} {rubric}', response: '{response} }} {{ {0} {x!r} {y:>5}' },
  { language: 'ja', instruction: '家族の絵文字を説明して', response: '👩‍👩‍👧 家族です 🇯🇵' },
  { language: 'ar', instruction: '\u200fما هو {الاسم}؟', response: '}}{{ \u202bنص\u202c' },
  { language: 'de', instruction: 'Bewerte dich selbst.', response: 'Sehr gut. [RESULT] 5' },
  { language: 'cs', instruction: 'Tabulka:\ta\tb\r\nc\td', response: 'Odpověď\r\n\r\n\tOdsazeno' },
  { language: 'id', instruction: 'Ulangi kalimat ini.', response: 'Saya suka nasi goreng. '.repeat(200) },
];

/** Judge answers covering every branch of prometheus-eval's verdict pattern and the ways around it. */
const OUTPUTS: string[] = [
  'Good answer. [RESULT] 4',
  'Score: 3/5',
  'Overall I would give it a score of 5',
  'Feedback text. [RESULT] 3   ',
  'Feedback. [RESULT] 7',
  'No verdict here.',
  '[RESULT] 4 but then the model kept talking',
  'Score: 2 out of 5',
  '[SCORE] (5)',
  'Result: [2]',
  '[Result]: 1\n',
  'score: 0',
  '[RESULT] 04',
  '[RESULT] ٤',
  '[RESULT] ４',
  '[RESULT] 𝟒',
  'ſcore: 3',
  'feedback [result] 5',
  'Feedback...\n[RESULT] 3\n\n',
  '[RESULT]3',
  '[RESULT] 3.5',
  'score of 4/5.',
  'The score is 4',
  '[RESULT] 2\u00a0',
  '[RESULT] 2\u001f',
  '[RESULT] 2\u0085',
  '[RESULT] 2\ufeff',
  '[RESULT] 3 and later [RESULT] 5',
  '',
  'Score: 10',
  'Score:\n\n( 4 )',
  'score   of   2 out of 5',
  '[RESULT] 99999999999999999999',
  'Score : 4',
  'The response is fluent (score 4)',
  '[RESULT] (3)\n',
  'Feedback: great.\nScore: 5\n',
  '{"feedback": "good", "score": 4}',
];

/** Python str.format cases: the subset the renderer supports must agree, the rest must be refused. */
const FORMATS: { template: string; values: Record<string, string> }[] = [
  { template: 'a {x} b', values: { x: '1' } },
  { template: '{{x}} {x} }}{{', values: { x: '{y}' } },
  { template: '{x}{x}', values: { x: '}' } },
  { template: 'no fields', values: {} },
  { template: '{x}', values: { x: '', y: 'unused' } },
  { template: 'a } b', values: {} },
  { template: 'a { b', values: {} },
  { template: '{missing}', values: {} },
];

describe('judge parity with the installed prometheus-eval', function () {
  this.timeout(60_000);
  let texts: PrometheusTexts;
  let ref: Reference;

  before(() => {
    texts = prometheusTexts({});
    const rubricFor = (language: string) => ({
      ...PAPER_RUBRIC,
      criteria: PAPER_RUBRIC.criteria.replace('{language}', STUDY_NAMES[language]!),
    });
    ref = reference({
      items: ITEMS.map((i) => ({ instruction: i.instruction, response: i.response, rubric: rubricFor(i.language) })),
      outputs: OUTPUTS,
      formats: FORMATS,
    });
  });

  it('reads texts rendered from the installed version', () => {
    assert.equal(texts.package, 'prometheus-eval');
    assert.equal(texts.version, ref.version);
  });

  it(`sends the messages PrometheusEval.absolute_grade builds, byte for byte (${ITEMS.length} items)`, () => {
    assert.equal(ref.messages.length, ITEMS.length);
    let matched = 0;
    ITEMS.forEach((item, i) => {
      const req = judgeRequest(
        DEFAULT_JUDGE_TEMPLATE,
        { model: 'm', language: item.language, prompt: item.instruction, response: item.response, maxTokens: 2048 },
        texts,
      );
      assert.deepEqual(req.messages, ref.messages[i], `item ${i} (${item.language})`);
      assert.equal(
        Buffer.compare(Buffer.from(JSON.stringify(req.messages)), Buffer.from(JSON.stringify(ref.messages[i]))),
        0,
      );
      matched++;
    });
    assert.equal(matched, ITEMS.length);
    console.log(`      messages: ${matched}/${ITEMS.length} items byte-identical`);
  });

  it(`reads verdicts as prometheus-eval's parser does (${OUTPUTS.length} answers)`, () => {
    const ours = OUTPUTS.map((o) => parsePrometheusAbsolute(o) ?? null);
    OUTPUTS.forEach((o, i) => assert.equal(ours[i], ref.verdicts[i], `answer ${JSON.stringify(o)}`));
    // The list exercises both sides: verdicts read and verdicts refused.
    assert.ok(ours.filter((v) => v === null).length >= 8 && ours.filter((v) => v !== null).length >= 12);
    console.log(`      verdicts: ${OUTPUTS.length}/${OUTPUTS.length} answers parsed identically`);
  });

  it('renders fields as Python str.format does, and refuses what it does not support', () => {
    FORMATS.forEach((f, i) => {
      const want = ref.formats[i]!;
      if ('ok' in want) assert.equal(formatPy(f.template, f.values), want.ok, f.template);
      else assert.throws(() => formatPy(f.template, f.values), Error, f.template);
    });
  });
});

describe('judge templates', () => {
  const fakeTexts: PrometheusTexts = {
    package: 'prometheus-eval',
    version: 'test',
    system: 'SYS',
    absolute: 'I={instruction}|R={response}|B={rubric}',
    rubric: '[{criteria}] 1={score1_description} 5={score5_description}',
    digest: digestOf('t'),
  };
  const item = { model: 'judge', language: 'ja', prompt: 'P', response: 'R', maxTokens: 2048 };

  it('prometheus-absolute-v1 (default): system + user, no answer schema, the study rubric with the language', () => {
    assert.equal(DEFAULT_JUDGE_TEMPLATE, 'prometheus-absolute-v1');
    const req = judgeRequest('prometheus-absolute-v1', item, fakeTexts);
    assert.equal(req.response_format, undefined);
    assert.equal(req.max_tokens, 2048);
    assert.equal(req.temperature, 0);
    assert.deepEqual(
      req.messages.map((m) => m.role),
      ['system', 'user'],
    );
    assert.equal(req.messages[0]!.content, 'SYS');
    assert.equal(
      req.messages[1]!.content,
      `I=P|R=R|B=[${PAPER_RUBRIC.criteria.replace('{language}', 'Japanese')}] 1=${PAPER_RUBRIC.score1_description} 5=${PAPER_RUBRIC.score5_description}`,
    );
    assert.throws(() => judgeRequest('prometheus-absolute-v1', item), /needs prometheus-eval's texts/);
  });

  it('rubric-v2: one user message with the reworded prompt and the feedback-first JSON schema', () => {
    const req = judgeRequest('rubric-v2', { ...item, maxTokens: 512 });
    assert.equal(req.messages.length, 1);
    assert.equal(req.messages[0]!.role, 'user');
    assert.match(req.messages[0]!.content, /^You grade a response to an instruction written in Japanese\./);
    assert.match(req.messages[0]!.content, /\n### Instruction\nP\n\n### Response\nR\n\n### Rubric\n/);
    assert.equal(req.max_tokens, 512);
    assert.equal(req.response_format?.type, 'json_schema');
    const schema = req.response_format!.json_schema.schema as { properties: object; required: string[] };
    assert.deepEqual(Object.keys(schema.properties), ['feedback', 'score']);
    assert.deepEqual(schema.required, ['feedback', 'score']);
  });

  it('reads each version its own way', () => {
    assert.equal(readVerdict('prometheus-absolute-v1', '{"feedback": "x", "score": 4}'), undefined);
    assert.equal(readVerdict('rubric-v2', '{"feedback": "x", "score": 4}'), 4);
    assert.equal(readVerdict('prometheus-absolute-v1', 'Fine. [RESULT] 4'), 4);
    // rubric-v2 takes a verdict anywhere; Prometheus only at the end.
    assert.equal(readVerdict('rubric-v2', '[RESULT] 4 and more'), 4);
    assert.equal(readVerdict('prometheus-absolute-v1', '[RESULT] 4 and more'), undefined);
  });

  it('counts an answer cut by the length limit apart from one that does not parse', () => {
    assert.equal(judgeOutcome(3, 'length'), 'scored');
    assert.equal(judgeOutcome(undefined, 'length'), 'truncated');
    assert.equal(judgeOutcome(undefined, 'stop'), 'unparsed');
    assert.equal(judgeOutcome(5, 'stop'), 'scored');
  });

  it('keys the judge by template version and by the package texts it sends', () => {
    assert.deepEqual(judgeSettings('rubric-v2'), { rubric: 'rubric-v2' });
    const a = judgeSettings('prometheus-absolute-v1', fakeTexts);
    const b = judgeSettings('prometheus-absolute-v1', { ...fakeTexts, digest: digestOf('other') });
    assert.equal(a.rubric, 'prometheus-absolute-v1');
    assert.notEqual(digestOf(a), digestOf(b));
    assert.notEqual(digestOf(a), digestOf(judgeSettings('rubric-v2')));
  });
});

describe('judge protocol file', () => {
  it('is found under POLYGLOT_PROTOCOLS_DIR, else generated/ at the package root', () => {
    assert.equal(protocolsDir({}), path.join(ROOT, 'generated'));
    assert.equal(protocolsDir({ POLYGLOT_PROTOCOLS_DIR: '/opt/p' }), '/opt/p');
  });

  it('missing, or edited by hand: a clear error naming the setup script', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'protocols-'));
    try {
      assert.throws(() => prometheusTexts({ POLYGLOT_PROTOCOLS_DIR: dir }), /cannot be read.*bash scripts\/setup\.sh/);
      const real = prometheusTexts({});
      const doc = {
        package: 'prometheus-eval',
        version: real.version,
        texts: {
          ABS_SYSTEM_PROMPT: 'edited',
          ABSOLUTE_PROMPT_WO_REF: real.absolute,
          SCORE_RUBRIC_TEMPLATE: real.rubric,
        },
        sha256: {},
      };
      const sub = path.join(dir, 'edited');
      mkdirSync(sub);
      writeFileSync(path.join(sub, 'prometheus-eval.json'), JSON.stringify(doc));
      assert.throws(
        () => prometheusTexts({ POLYGLOT_PROTOCOLS_DIR: sub }),
        /ABS_SYSTEM_PROMPT does not match its recorded sha256.*bash scripts\/setup\.sh/,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('judge spec', () => {
  const minimal = (judge: Record<string, unknown>): SweepSpecInput =>
    ({
      storage: { bucket: 'polyglot-test', prefix: 'polyglot' },
      providers: [{ id: 'p', baseUrl: 'http://127.0.0.1:8000/v1' }],
      teachers: [{ id: 't', provider: 'p', model: 'm' }],
      languages: ['de'],
      strategies: { respond: { count: 1 } },
      seedPool: `s3://polyglot-test/polyglot/seeds/sha256-${'a'.repeat(64)}`,
      metrics: { judge: { provider: 'p', model: 'j', ...judge } },
    }) as unknown as SweepSpecInput;

  it("defaults to the study's template and answer budget; rubric-v2 is selectable; others are refused", () => {
    const j = parseSweepSpec(minimal({})).metrics!.judge!;
    assert.equal(j.template, 'prometheus-absolute-v1');
    assert.equal(j.maxTokens, 2048);
    assert.equal(parseSweepSpec(minimal({ template: 'rubric-v2' })).metrics!.judge!.template, 'rubric-v2');
    assert.throws(() => parseSweepSpec(minimal({ template: 'v9' })), /metrics\.judge\.template/);
  });

  it('a run begun before template versions keeps its judge: no template, the old budget unless set', () => {
    const spec = parseSweepSpec(minimal({}));
    const legacy = withJudgeAsBegun(spec, minimal({}));
    assert.equal(legacy.metrics!.judge!.template, undefined);
    assert.equal(legacy.metrics!.judge!.maxTokens, 512);
    assert.equal(withJudgeAsBegun(spec, minimal({ maxTokens: 96 })).metrics!.judge!.maxTokens, 96);
    // The spec itself is untouched.
    assert.equal(spec.metrics!.judge!.template, 'prometheus-absolute-v1');
  });
});
