import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import path from 'node:path';
import { ChatClient, parseSftJson } from '../../src/llm/client';
import { sftExampleSchema } from '../../src/spec/templates';
import { freePort, ROOT } from '../support/stack';
import { spawnTracked, stopProcess } from '../support/processes';

/**
 * The project's local OpenAI-compatible server around node-llama-cpp, with the real SmolLM2-135M
 * model that scripts/setup.sh extracts from its PyPI package. Small max_tokens keep this fast on CPU.
 */
describe('local LLM server (node-llama-cpp + SmolLM2-135M)', function () {
  this.timeout(180_000);
  let server: ChildProcess;
  let base: string;

  before(async () => {
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    server = spawnTracked(
      process.execPath,
      [
        path.join(ROOT, 'tools/local-llm/server.mjs'),
        '--model',
        path.join(ROOT, '.tools/models/SmolLM2-135M-Instruct.Q4_1.gguf'),
        '--port',
        String(port),
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    await new Promise<void>((resolve, reject) => {
      let out = '';
      server.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('local-llm listening on')) resolve();
      });
      server.stderr!.on('data', (d: Buffer) => (out += d.toString()));
      server.once('exit', (code) => reject(new Error(`local LLM exited ${code}: ${out}`)));
    });
  });
  after(async () => {
    if (server) await stopProcess(server, 'SIGTERM');
  });

  // Response bodies are checked field by field below; their exact type is what the test asserts.
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  async function post(p: string, body: unknown): Promise<{ status: number; json: any }> {
    const r = await fetch(`${base}${p}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    return { status: r.status, json: await r.json() };
  }

  it('lists its model', async () => {
    const r = await fetch(`${base}/v1/models`);
    const body = (await r.json()) as { data: { id: string }[] };
    assert.deepEqual(
      body.data.map((m) => m.id),
      ['smollm2-135m'],
    );
  });

  it('answers chat completions with JSON that follows the requested schema, through the project client', async () => {
    const client = new ChatClient({ baseUrl: `${base}/v1`, timeoutMs: 120_000 });
    const r = await client.chat({
      model: 'smollm2-135m',
      messages: [{ role: 'user', content: 'Write one short German question and its answer as JSON.' }],
      max_tokens: 96,
      temperature: 0.2,
      seed: 7,
      response_format: {
        type: 'json_schema',
        json_schema: { name: 'SFTExample', schema: sftExampleSchema('German', false) },
      },
    });
    assert.ok(r.promptTokens > 0 && r.completionTokens > 0);
    if (r.finishReason === 'stop') {
      const parsed = parseSftJson(r.content);
      assert.ok(parsed, `not an SFT example: ${r.content}`);
    } else {
      // Cut off by max_tokens: the grammar still guarantees a JSON prefix.
      assert.equal(r.finishReason, 'length');
      assert.match(r.content, /^\s*\{/);
    }
  });

  it('scores text with echo + logprobs: one finite log-probability ≤ 0 per token after the first', async () => {
    const text = 'Berlin ist die Hauptstadt von Deutschland.';
    const { status, json } = await post('/v1/completions', {
      model: 'smollm2-135m',
      prompt: text,
      echo: true,
      max_tokens: 0,
      logprobs: 1,
    });
    assert.equal(status, 200);
    const lp = json.choices[0].logprobs as { tokens: string[]; token_logprobs: (number | null)[] };
    assert.equal(lp.tokens.length, lp.token_logprobs.length);
    assert.ok(lp.tokens.length > 3);
    assert.equal(lp.token_logprobs[0], null);
    for (const v of lp.token_logprobs.slice(1))
      assert.ok(v !== null && Number.isFinite(v) && v <= 0, `bad logprob ${v}`);
    const tok = await post('/tokenize', { content: text });
    assert.equal(tok.json.tokens.length, lp.tokens.length);
  });

  it('rejects a bad request with a 400 that names the field', async () => {
    const { status, json } = await post('/v1/chat/completions', { model: 'smollm2-135m', messages: 'hi' });
    assert.equal(status, 400);
    assert.match(json.error.message, /messages/);
  });
});
