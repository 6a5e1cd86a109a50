import assert from 'node:assert/strict';
import path from 'node:path';
import { readSpecFile } from '../../src/cli/spec-file';
import { parseSweepSpec } from '../../src/spec/sweep';
import { runCommand } from '../support/processes';
import { ROOT } from '../support/stack';

/**
 * examples/paper.yaml is the paper's main grid (docs/method.md). It must stay a valid spec that the real
 * CLI plans, and it must keep saying what the paper did: both are checked here.
 */
describe('examples/paper.yaml: the paper as a preset', function () {
  this.timeout(60_000);
  const file = path.join(ROOT, 'examples/paper.yaml');

  it("holds the paper's grid, metric models, students, anchors and training recipe", async () => {
    const spec = parseSweepSpec(await readSpecFile(file));
    assert.deepEqual(
      spec.teachers.map((t) => t.model),
      [
        'google/gemma-3-27b-it',
        'google/gemma-3-12b-it',
        'google/gemma-3-4b-it',
        'CohereLabs/aya-expanse-32b',
        'command-a-03-2025',
        'gpt-4o-mini-2024-07-18',
        'meta-llama/Llama-3.1-70B-Instruct',
        'meta-llama/Llama-3.1-8B-Instruct',
        'ibm-granite/granite-4.0-micro',
        'ibm-granite/granite-4.0-1b',
      ],
    );
    for (const t of spec.teachers) assert.deepEqual(t.sampling, { temperature: 0.8, topP: 0.9, maxTokens: 4096 }, t.id);
    for (const t of spec.teachers) {
      const p = spec.providers.find((x) => x.id === t.provider)!;
      assert.match(p.apiKeyEnv ?? '', /^POLYGLOT_PROVIDER_KEY_/, `${t.id}: keys come from named variables`);
    }
    assert.deepEqual(spec.languages, ['ar', 'cs', 'de', 'es', 'id', 'ja']);
    assert.deepEqual(spec.strategies, {
      generate: { count: 10000 },
      translate: { count: 10000 },
      respond: { count: 10000 },
    });
    const m = spec.metrics!;
    assert.deepEqual(
      [m.subsampleSize, m.subsampleSeed, m.judge?.model, m.perplexity?.model, m.embeddings?.model, m.tokenizer?.model],
      [
        10000,
        42,
        'Unbabel/M-Prometheus-7B',
        'google/gemma-3-4b-pt',
        'nvidia/llama-embed-nemotron-8b',
        'allenai/Olmo-3-1025-7B',
      ],
    );
    assert.deepEqual(
      spec.students.map((s) => [s.id, s.model, s.chatTemplate, s.languages ?? 'all']),
      [
        ['olmo-3-7b', 'allenai/Olmo-3-1025-7B', 'llama-3.1', 'all'],
        ['gemma-3-4b', 'google/gemma-3-4b-pt', 'gemma-3', ['ar', 'de', 'id']],
        ['qwen-3-8b', 'Qwen/Qwen3-8B-Base', 'llama-3.1', ['ar', 'de', 'id']],
        ['llama-3-8b', 'meta-llama/Meta-Llama-3-8B', 'llama-3.1', ['ar', 'de', 'id']],
      ],
    );
    for (const s of spec.students) {
      assert.deepEqual(s.anchors, { base: 'allenai/Olmo-3-1025-7B', reference: 'allenai/Olmo-3-7B-Instruct-SFT' });
    }
    assert.deepEqual(spec.training!.hyper, {
      method: 'qlora',
      loraR: 16,
      loraAlpha: 16,
      loraDropout: 0,
      loraTargets: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'],
      learningRate: 5e-5,
      epochs: 2,
      perDeviceBatchSize: 2,
      gradientAccumulation: 4,
      maxSeqLength: 16384,
      packing: false,
      optimizer: 'adamw_8bit',
      weightDecay: 0.001,
      scheduler: 'linear',
      warmupSteps: 5,
      seed: 3407,
      subsampleSeed: 42,
      trainSize: 10500,
      precision: 'auto',
      save: ['merged'],
      saveDtype: 'bfloat16',
    });
    assert.ok(spec.evaluation, 'students need an evaluation job');
    assert.deepEqual([spec.scoring.alpha, spec.scoring.smallGapThreshold], [0.5, 0.02]);
  });

  it('`polyglot sweep plan` accepts it and prints the 60 cells, the request and the cost estimate', async () => {
    // The worker operator's allow-lists for this spec (the test stack's policy is a local one's).
    const env = {
      ...process.env,
      POLYGLOT_ALLOWED_HOSTS: 'http://vllm.inference.svc.cluster.local:8000,api.openai.com,api.cohere.ai',
      POLYGLOT_ALLOWED_SECRETS: 'polyglot-hf/token=HF_TOKEN',
    };
    const res = await runCommand(path.join(ROOT, 'bin/polyglot'), ['sweep', 'plan', file], env);
    assert.equal(res.code, 0, res.out);
    // 10 teachers × 6 languages; 3 strategies × 10,000 seeds per cell.
    assert.match(
      res.out,
      /sweep paper-main-grid \(workflow sweep\/paper-main-grid\): 60 cells, \d+ shards, 1800000 examples requested/,
    );
    assert.equal((res.out.match(/^ {2}MISS /gm) ?? []).length, 60, res.out);
    assert.match(res.out, /MISS gemma-3-27b \/ ja {2}\[generate×10000 translate×10000 respond×10000\]/);
    // Every completion at maxTokens 4,096 plus ~600 prompt tokens; only the two API teachers cost money:
    // gpt-4o-mini 6 cells × 30,000 × (600 × 0.15 + 4096 × 0.6)/1e6 = $458.568,
    // command-a 6 × 30,000 × (600 × 2.5 + 4096 × 10)/1e6 = $7,642.80.
    assert.match(res.out, /to compute: 1800000 requests, ≈ 8452800000 tokens, ≈ \$8101\.37/);
  });
});
