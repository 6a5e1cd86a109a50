import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { ChatClient } from '../../src/llm/client';
import { responsePerplexity, scoreItem, type ScoringEndpoint } from '../../src/metrics/perplexity';
import { startBosEchoProxy } from '../support/bos-echo-proxy';
import { transformersPerplexity } from '../support/reference';
import { stopProcess } from '../support/registry';
import { LLM_MODEL, startScoringLlm } from '../support/servers';
import { freePort } from '../support/stack';

/**
 * Perplexity parity (docs/method.md, "Perplexity"): per-item values through the project's local LLM server equal a
 * direct transformers computation on the same weights (SmolLM2-135M-Instruct; transformers de-quantizes the shipped
 * GGUF itself, the server reads the F32 copy that setup writes), and stay equal through a server that echoes a BOS
 * token as vLLM does.
 */

/** Fixed items in several scripts; prompt and response are joined with no separator, as the metric does. */
const ITEMS = [
  { prompt: 'What is the capital of France?', response: ' The capital of France is Paris.' },
  {
    prompt: 'Write a haiku about rain.\n',
    response: 'Soft rain on the roof,\nquiet streets wash into gray,\nthe city exhales.',
  },
  {
    prompt: '¿Cuál es el río más largo de España?',
    response: ' El río más largo de España es el Tajo, con unos 1.007 km.',
  },
  { prompt: 'Erkläre kurz, was Photosynthese ist.', response: 'Photosynthese wandelt Licht in chemische Energie um.' },
  { prompt: 'Co je hlavní město České republiky?', response: ' Hlavním městem je Praha.' },
  { prompt: '日本の首都はどこですか？', response: '日本の首都は東京です。' },
  { prompt: 'ما هي عاصمة مصر؟', response: ' عاصمة مصر هي القاهرة.' },
  { prompt: 'Apa ibu kota Indonesia?', response: 'Ibu kota Indonesia adalah Jakarta.' },
  { prompt: 'Translate to Russian: good morning', response: 'Доброе утро' },
  { prompt: '2 + 2 =', response: ' 4' },
  { prompt: 'List three colors:', response: '\n- red\n- green\n- blue' },
  { prompt: 'Say hello in Hindi.', response: ' नमस्ते' },
];
const GGUF = 'SmolLM2-135M-Instruct.Q4_1.gguf'; // what transformers loads: the shipped file, not the F32 copy
const TOLERANCE = 1e-3;

function endpoint(baseUrl: string): ScoringEndpoint {
  const client = new ChatClient({ baseUrl: `${baseUrl}/v1`, timeoutMs: 120_000 });
  return {
    countTokens: (text) => client.countTokens(LLM_MODEL, text),
    promptLogprobs: async (text) => (await client.promptLogprobs(LLM_MODEL, text)).logprobs,
  };
}

const relErr = (a: number, b: number) => Math.abs(a - b) / Math.abs(b);

describe('perplexity parity with transformers (SmolLM2-135M-Instruct)', function () {
  this.timeout(600_000);
  let llm: ChildProcess;
  let base: string;
  let proxy: Awaited<ReturnType<typeof startBosEchoProxy>>;

  before(async () => {
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    llm = await startScoringLlm(port);
    // SmolLM2's BOS is <|im_start|>, id 1 (its tokenizer never adds it; this proxy plays one that does).
    proxy = await startBosEchoProxy(base, { id: 1, text: '<|im_start|>' });
  });

  after(async () => {
    proxy?.close();
    if (llm) await stopProcess(llm, 'SIGTERM');
  });

  it('A: per-item values through the local server equal transformers within 1e-3 relative', async () => {
    const ref = transformersPerplexity(GGUF, ITEMS, false);
    const server = endpoint(base);
    let worst = 0;
    for (const [i, it] of ITEMS.entries()) {
      const got = await scoreItem(server, it.prompt, it.response);
      const err = relErr(got.ppl, ref[i]!);
      worst = Math.max(worst, err);
      assert.ok(err <= TOLERANCE, `item ${i}: server ${got.ppl} vs transformers ${ref[i]} (rel ${err})`);
    }
    console.log(`    perplexity A: ${ITEMS.length}/${ITEMS.length} items within ${TOLERANCE}, max rel error ${worst}`);
  });

  it('B: through a vLLM-style server that echoes its BOS token, the values still equal transformers', async () => {
    const ref = transformersPerplexity(GGUF, ITEMS, true);
    const direct = endpoint(base);
    const server = endpoint(proxy.url);
    let worst = 0;
    let oldBoundaryOff = 0;
    for (const [i, it] of ITEMS.entries()) {
      const got = await scoreItem(server, it.prompt, it.response);
      const promptTokens = await direct.countTokens(it.prompt);
      assert.equal(got.logprobs[0], null, 'the echo starts with the BOS token, unscored');
      assert.equal(got.boundary, promptTokens + 1, `item ${i}: the BOS is detected and the boundary moves past it`);
      const err = relErr(got.ppl, ref[i]!);
      worst = Math.max(worst, err);
      assert.ok(err <= TOLERANCE, `item ${i}: server ${got.ppl} vs transformers ${ref[i]} (rel ${err})`);
      // The boundary the metric used before (the prompt count alone) scores the prompt's last token too.
      if (relErr(responsePerplexity(got.logprobs, promptTokens), ref[i]!) > TOLERANCE) oldBoundaryOff++;
    }
    assert.equal(oldBoundaryOff, ITEMS.length, 'a boundary that ignores the BOS must miss every item');
    console.log(`    perplexity B: ${ITEMS.length}/${ITEMS.length} items within ${TOLERANCE}, max rel error ${worst}`);
  });
});
