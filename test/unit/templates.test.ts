import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { loadSpec } from '../../src/cli/spec-file';
import { buildChatRequest, interpretResult, type GenerationContext } from '../../src/generation/requests';
import type { SeedRow } from '../../src/seeds/pool';
import { sha256Hex } from '../../src/common/hash';
import { planSweep } from '../../src/spec/plan';
import { parseSweepSpec, type SweepSpecInput } from '../../src/spec/sweep';
import {
  TEMPLATE_HASHES,
  renderTemplate,
  templateHashOf,
  templateProblems,
  type TemplateFiles,
} from '../../src/spec/templates';
import { keys } from '../../src/storage/layout';
import { StoreRegistry, makeS3Client } from '../../src/storage/s3';

const POOL = `s3://polyglot-test/polyglot/seeds/sha256-${'a'.repeat(64)}`;
const stored = (text: string) => `s3://polyglot-test/${keys.template('polyglot', sha256Hex(text))}`;

function spec(templates?: unknown): SweepSpecInput {
  return {
    storage: { bucket: 'polyglot-test', prefix: 'polyglot' },
    providers: [{ id: 'local', baseUrl: 'http://127.0.0.1:8000/v1' }],
    teachers: [{ id: 'smol', provider: 'local', model: 'smollm2-135m' }],
    languages: ['de'],
    strategies: { generate: { count: 2 }, respond: { count: 2 } },
    seedPool: POOL,
    ...(templates !== undefined ? { templates } : {}),
  } as SweepSpecInput;
}

const seed = (id: string, prompt: string): SeedRow => ({
  id,
  source: 's',
  source_id: id,
  language: 'de',
  strategy: ['generate', 'respond'],
  prompt,
  response: `answer ${id}`,
});

describe('a spec’s own prompt files', () => {
  it('keeps the built-in wordings byte for byte: their hashes are in every dataset key made with them', () => {
    // A changed hash silently turns every finished dataset into a cache miss; change a wording on purpose by
    // adding a template version, never by editing one in place.
    assert.deepEqual(TEMPLATE_HASHES, { v1: 'dd7d10b96be1374b', v2: 'ccdaf8476c8e52e1' });
  });

  it('checks the placeholders each part needs, naming what is missing and what is allowed', () => {
    assert.deepEqual(templateProblems('respond', 'Answer in {{language}}: {{prompt}}'), []);
    assert.match(templateProblems('respond', 'Answer in {{language}}.')[0]!, /lacks \{\{prompt\}\}.*seed prompt/);
    assert.match(templateProblems('generate', 'Write one in {{language}}.')[0]!, /lacks \{\{examples\}\}.*in-context/);
    assert.match(
      templateProblems('translate', '{{prompt}} {{langauge}}')[0]!,
      /unknown placeholder\(s\) \{\{langauge\}\}; a translate template may use \{\{language\}\}, \{\{prompt\}\}/,
    );
    assert.deepEqual(templateProblems('system', 'You speak {{ language }}.'), []);
    assert.match(templateProblems('system', '  ')[0]!, /empty/);
  });

  it('fills placeholders in one pass: a seed prompt that contains a placeholder stays as written', () => {
    assert.equal(
      renderTemplate('[{{language}}] {{prompt}} {"json": {"kept": true}}', {
        language: 'German',
        prompt: 'say {{language}}',
      }),
      '[German] say {{language}} {"json": {"kept": true}}',
    );
  });

  it('takes only stored files in a validated spec; the CLI’s job is to store the others', () => {
    assert.throws(
      () => parseSweepSpec(spec({ respond: 's3://other/x.txt' })),
      /templates\.respond: must be a stored prompt file \(s3:\/\/<bucket>\/<prefix>\/templates\/sha256-<64 hex>\.txt\); in a spec file give a local path/,
    );
    assert.throws(
      () => parseSweepSpec(spec({ respond: '/etc/passwd' })),
      /templates\.respond: must be a stored prompt file/,
    );
    assert.throws(() => parseSweepSpec(spec({ respnd: stored('x {{prompt}}') })), /templates/);
    assert.equal(parseSweepSpec(spec('v2')).templates?.version, 'v2');
  });

  it('hashes each file’s digest into the dataset key, and only when the spec has files of its own', () => {
    const plain = planSweep(parseSweepSpec(spec())).cells[0]!;
    const named = planSweep(parseSweepSpec(spec('v1'))).cells[0]!;
    assert.equal(named.datasetKey, plain.datasetKey, 'the version by name is the same wording');
    assert.equal(plain.keyManifest.templateHash, TEMPLATE_HASHES.v1);
    const a = planSweep(parseSweepSpec(spec({ respond: stored('A {{prompt}}') }))).cells[0]!;
    const b = planSweep(parseSweepSpec(spec({ respond: stored('B {{prompt}}') }))).cells[0]!;
    assert.notEqual(a.datasetKey, plain.datasetKey);
    assert.notEqual(a.datasetKey, b.datasetKey, 'a change of wording is a new dataset');
    assert.deepEqual(a.keyManifest.templateFiles, { respond: stored('A {{prompt}}') });
    assert.equal(a.keyManifest.templateHash, templateHashOf('v1', { respond: stored('A {{prompt}}') }));
    assert.notEqual(
      templateHashOf('v1', a.keyManifest.templateFiles),
      templateHashOf('v2', a.keyManifest.templateFiles),
    );
  });

  it('sends the file’s wording for its part, the version’s for the others, and records the hash on the row', () => {
    const files: TemplateFiles = { respond: stored('R:{{language}}:{{prompt}}'), system: stored('S:{{language}}') };
    const ctx: GenerationContext = {
      datasetKey: 'k',
      strategy: 'respond',
      language: 'de',
      teacher: parseSweepSpec(spec()).teachers[0]!,
      templateVersion: 'v1',
      customTemplates: { respond: 'R:{{language}}:{{prompt}}', system: 'S:{{language}}' },
      templateHash: templateHashOf('v1', files),
      seed: 1,
      selection: [seed('a', 'Wie spät ist es?'), seed('b', 'b'), seed('c', 'c'), seed('d', 'd')],
    };
    const { request, synthPrompt } = buildChatRequest(ctx, ctx.selection[0]!);
    assert.equal(synthPrompt, 'R:German:Wie spät ist es?');
    assert.deepEqual(request.messages[0], { role: 'system', content: 'S:German' });
    const out = interpretResult(ctx, ctx.selection[0]!, synthPrompt, {
      content: 'Es ist spät.',
      finishReason: 'stop',
      promptTokens: 1,
      completionTokens: 1,
    });
    assert.ok(out.ok);
    assert.equal(out.row.template_hash, templateHashOf('v1', files));
    // generate keeps the built-in v1 wording: only respond and system were replaced.
    const gen = buildChatRequest({ ...ctx, strategy: 'generate' }, ctx.selection[0]!);
    assert.match(gen.synthPrompt, /^You generate multilingual training data/);
    assert.deepEqual(gen.request.messages[0], { role: 'system', content: 'S:German' });
  });

  it('the CLI reads a local file beside the spec, checks it and names it by its digest (plan: nothing stored)', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'tpl-'));
    writeFileSync(path.join(dir, 'respond.txt'), 'Antworte auf {{language}}: {{prompt}}');
    writeFileSync(path.join(dir, 'bad.txt'), 'Antworte.');
    const file = path.join(dir, 'spec.json');
    // An unreachable S3 endpoint: planning must not touch S3 for a local file.
    const stores = new StoreRegistry(makeS3Client('http://127.0.0.1:9', 'us-east-1'));
    writeFileSync(file, JSON.stringify(spec({ version: 'v2', respond: './respond.txt' })));
    const loaded = await loadSpec(file, stores, { importSeeds: false });
    assert.equal(loaded.templates?.respond, stored('Antworte auf {{language}}: {{prompt}}'));
    assert.equal(loaded.templates?.version, 'v2');
    writeFileSync(file, JSON.stringify(spec({ respond: './bad.txt' })));
    await assert.rejects(
      loadSpec(file, stores, { importSeeds: false }),
      /templates\.respond: .*bad\.txt: it lacks \{\{prompt\}\}/,
    );
    writeFileSync(file, JSON.stringify(spec({ respond: './none.txt' })));
    await assert.rejects(loadSpec(file, stores, { importSeeds: false }), /templates\.respond: cannot read .*none\.txt/);
  });
});
