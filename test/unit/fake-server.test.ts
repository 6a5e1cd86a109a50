import assert from 'node:assert/strict';
import { FakeLlmServer, type FakeFault } from '../support/fake-server';

interface ChatResponse {
  model: string;
  choices: { message: { role: string; content: string }; finish_reason: string }[];
  usage: { prompt_tokens: number; completion_tokens: number; total_tokens: number };
}

interface ErrorResponse {
  error: { message: string; type: string; code: string | null };
}

const schemaFormat = {
  type: 'json_schema',
  json_schema: {
    name: 'pair',
    strict: true,
    schema: {
      type: 'object',
      properties: {
        prompt: { type: 'string' },
        response: { type: 'string' },
        difficulty: { type: 'integer', minimum: 1, maximum: 5 },
        score: { type: 'number' },
        level: { type: 'string', enum: ['easy', 'medium', 'hard'] },
      },
      required: ['prompt', 'response', 'difficulty', 'score', 'level'],
      additionalProperties: false,
    },
  },
};

function chatBody(text: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    model: 'fake-model',
    messages: [
      { role: 'system', content: 'You are a teacher.' },
      { role: 'user', content: text },
    ],
    temperature: 0.7,
    seed: 42,
    ...extra,
  };
}

async function post(url: string, body: unknown, init: RequestInit = {}): Promise<Response> {
  return fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(init.headers ?? {}) },
    body: typeof body === 'string' ? body : JSON.stringify(body),
    signal: init.signal ?? AbortSignal.timeout(5000),
  });
}

describe('FakeLlmServer', () => {
  let server: FakeLlmServer;
  let base: string;

  beforeEach(async () => {
    server = new FakeLlmServer();
    base = await server.start();
  });

  afterEach(async () => {
    await server.stop();
  });

  const chat = (body: unknown, init?: RequestInit): Promise<Response> => post(`${base}/chat/completions`, body, init);

  it('reports its URL and lists models', async () => {
    assert.match(base, /^http:\/\/127\.0\.0\.1:\d+\/v1$/);
    assert.equal(server.url, base);
    const res = await fetch(`${base}/models`);
    assert.equal(res.status, 200);
    const body = (await res.json()) as { data: { id: string }[] };
    assert.deepEqual(
      body.data.map((m) => m.id),
      ['fake-model'],
    );
  });

  it('answers identical requests identically and different requests differently', async () => {
    const a = await (await chat(chatBody('Explain photosynthesis.'))).text();
    const b = await (await chat(chatBody('Explain photosynthesis.'))).text();
    const c = await (await chat(chatBody('Explain gravity.'))).text();
    const d = await (await chat(chatBody('Explain photosynthesis.', { seed: 43 }))).text();
    assert.equal(a, b);
    assert.notEqual(a, c);
    assert.notEqual(a, d);

    const parsed = JSON.parse(a) as ChatResponse;
    const first = parsed.choices[0];
    assert.ok(first);
    assert.equal(first.finish_reason, 'stop');
    assert.equal(first.message.role, 'assistant');
    assert.ok(first.message.content.split(' ').length >= 5, first.message.content);
    const promptChars = 'You are a teacher.'.length + 'Explain photosynthesis.'.length;
    assert.equal(parsed.usage.prompt_tokens, Math.ceil(promptChars / 4));
    assert.equal(parsed.usage.completion_tokens, Math.ceil(first.message.content.length / 4));
    assert.equal(parsed.usage.total_tokens, parsed.usage.prompt_tokens + parsed.usage.completion_tokens);
  });

  it('fills json_schema responses with the required keys', async () => {
    const res = await chat(chatBody('Write a teaching pair.', { response_format: schemaFormat }));
    assert.equal(res.status, 200);
    const body = (await res.json()) as ChatResponse;
    const content = JSON.parse(body.choices[0]?.message.content ?? '') as Record<string, unknown>;
    assert.deepEqual(Object.keys(content).sort(), ['difficulty', 'level', 'prompt', 'response', 'score']);
    assert.equal(typeof content.prompt, 'string');
    assert.match(content.prompt as string, /^prompt [0-9a-f]{8} \w+/);
    assert.match(content.response as string, /^response [0-9a-f]{8} \w+/);
    assert.ok(Number.isInteger(content.difficulty));
    assert.ok((content.difficulty as number) >= 1 && (content.difficulty as number) <= 5);
    assert.equal(typeof content.score, 'number');
    assert.ok(['easy', 'medium', 'hard'].includes(content.level as string));

    const other = (await (
      await chat(chatBody('Write another pair.', { response_format: schemaFormat }))
    ).json()) as ChatResponse;
    const otherContent = JSON.parse(other.choices[0]?.message.content ?? '') as Record<string, unknown>;
    assert.notEqual(otherContent.prompt, content.prompt);

    const obj = (await (
      await chat(chatBody('json please', { response_format: { type: 'json_object' } }))
    ).json()) as ChatResponse;
    assert.equal(
      typeof (JSON.parse(obj.choices[0]?.message.content ?? '') as Record<string, unknown>).response,
      'string',
    );
  });

  const errorCases: [FakeFault['kind'], number, string, string][] = [
    ['429', 429, 'rate_limit_error', 'rate_limit_exceeded'],
    ['500', 500, 'server_error', 'internal_error'],
    ['400', 400, 'invalid_request_error', 'invalid_request'],
    ['401', 401, 'authentication_error', 'invalid_api_key'],
  ];
  for (const [kind, status, type, code] of errorCases) {
    it(`fault '${kind}' answers ${status} with an OpenAI-style error`, async () => {
      server.injectFaults([{ kind }]);
      const res = await chat(chatBody('hi'));
      assert.equal(res.status, status);
      const body = (await res.json()) as ErrorResponse;
      assert.equal(body.error.type, type);
      assert.equal(body.error.code, code);
      assert.equal(typeof body.error.message, 'string');
      // The queue is drained: the next request is served normally.
      assert.equal((await chat(chatBody('hi'))).status, 200);
    });
  }

  it('sets Retry-After on 429 (default 1, or retryAfterSeconds)', async () => {
    server.injectFaults([{ kind: '429' }, { kind: '429', retryAfterSeconds: 7 }]);
    const first = await chat(chatBody('x'));
    assert.equal(first.headers.get('retry-after'), '1');
    await first.text();
    const second = await chat(chatBody('x'));
    assert.equal(second.headers.get('retry-after'), '7');
    await second.text();
  });

  it("fault 'garbage' answers 200 with a non-JSON body", async () => {
    server.injectFaults([{ kind: 'garbage' }]);
    const res = await chat(chatBody('x'));
    assert.equal(res.status, 200);
    const text = await res.text();
    assert.equal(text, '<html>oops');
    assert.throws(() => JSON.parse(text) as unknown);
  });

  it("fault 'truncated' answers 200 with truncated JSON content and finish_reason 'length'", async () => {
    server.injectFaults([{ kind: 'truncated' }, { kind: 'truncated' }]);
    for (const extra of [{ response_format: schemaFormat }, {}]) {
      const res = await chat(chatBody('x', extra));
      assert.equal(res.status, 200);
      const body = (await res.json()) as ChatResponse;
      const choice = body.choices[0];
      assert.ok(choice);
      assert.equal(choice.finish_reason, 'length');
      assert.ok(choice.message.content.startsWith('{"'), choice.message.content);
      assert.throws(() => JSON.parse(choice.message.content) as unknown);
    }
  });

  it("fault 'empty' answers 200 with empty content", async () => {
    server.injectFaults([{ kind: 'empty' }]);
    const res = await chat(chatBody('x'));
    assert.equal(res.status, 200);
    const body = (await res.json()) as ChatResponse;
    assert.equal(body.choices[0]?.message.content, '');
    assert.equal(body.usage.completion_tokens, 0);
  });

  it("fault 'timeout' never answers", async () => {
    server.injectFaults([{ kind: 'timeout' }]);
    await assert.rejects(chat(chatBody('x'), { signal: AbortSignal.timeout(200) }), (err: Error) => {
      assert.ok(err.name === 'TimeoutError' || err.name === 'AbortError', err.name);
      return true;
    });
    assert.equal((await chat(chatBody('x'))).status, 200);
  });

  it('applies periodic faults to every Nth request', async () => {
    server.setPeriodicFault(3, { kind: '500' });
    const statuses: number[] = [];
    for (let i = 0; i < 7; i++) {
      const res = await chat(chatBody(`q${i}`));
      await res.text();
      statuses.push(res.status);
    }
    assert.deepEqual(statuses, [200, 200, 500, 200, 200, 500, 200]);
    server.setPeriodicFault(3, null);
    const res = await chat(chatBody('q'));
    assert.equal(res.status, 200);
    await res.text();
  });

  it('counts requests, served answers, faults and repeated prompts', async () => {
    server.injectFaults([{ kind: '500' }]);
    for (const text of ['a', 'a', 'b']) await (await chat(chatBody(text))).text();
    await (await chat(chatBody('a'))).text();
    let s = server.stats();
    assert.equal(s.chatCompletions, 4);
    assert.equal(s.faulted, 1);
    assert.equal(s.served, 3);
    assert.deepEqual([...s.byPrompt.values()].sort(), [1, 2]);
    assert.equal(s.concurrentPeak, 1);

    const remote = (await (await fetch(`${base.replace(/\/v1$/, '')}/_stats`)).json()) as Record<string, unknown>;
    assert.equal(remote.chatCompletions, 4);
    assert.equal(Object.keys(remote.byPrompt as object).length, 2);

    server.resetStats();
    s = server.stats();
    assert.equal(s.chatCompletions, 0);
    assert.equal(s.served, 0);
    assert.equal(s.byPrompt.size, 0);
  });

  it('is controllable over HTTP via /_faults', async () => {
    const root = base.replace(/\/v1$/, '');
    const ctl = await post(`${root}/_faults`, { faults: [{ kind: '429', retryAfterSeconds: 3 }] });
    assert.equal(ctl.status, 200);
    await ctl.text();
    const res = await chat(chatBody('x'));
    assert.equal(res.status, 429);
    assert.equal(res.headers.get('retry-after'), '3');
    await res.text();

    await (await post(`${root}/_faults`, { periodic: { everyN: 1, fault: { kind: '400' } } })).text();
    assert.equal((await chat(chatBody('y'))).status, 400);
    await (await post(`${root}/_faults`, { periodic: { everyN: 1, fault: null }, latencyMs: 0 })).text();
    assert.equal((await chat(chatBody('y'))).status, 200);

    const bad = await post(`${root}/_faults`, { faults: [{ kind: 'nope' }] });
    assert.equal(bad.status, 400);
    await bad.text();
  });

  it('rejects invalid JSON and malformed requests with 400', async () => {
    const res = await chat('{not json');
    assert.equal(res.status, 400);
    assert.equal(((await res.json()) as ErrorResponse).error.type, 'invalid_request_error');
    const missing = await chat({ model: 'fake-model' });
    assert.equal(missing.status, 400);
    await missing.text();
    assert.equal(server.stats().served, 0);
  });

  it('rejects bodies over 1 MB with 413', async () => {
    const res = await chat(chatBody('x'.repeat(1024 * 1024 + 10)));
    assert.equal(res.status, 413);
    await res.text();
  });

  it('tracks concurrentPeak across parallel requests with latency', async () => {
    server.setLatency(150);
    const started = Date.now();
    const responses = await Promise.all([1, 2, 3, 4, 5].map((i) => chat(chatBody(`parallel ${i}`))));
    for (const r of responses) {
      assert.equal(r.status, 200);
      await r.text();
    }
    assert.ok(Date.now() - started >= 140);
    assert.ok(server.stats().concurrentPeak >= 2, `peak ${server.stats().concurrentPeak}`);
  });
});

describe('FakeLlmServer auth and shutdown', () => {
  it('requires the API key when configured', async () => {
    const server = new FakeLlmServer({ requireApiKey: 'sk-test' });
    const base = await server.start();
    try {
      const noKey = await post(`${base}/chat/completions`, chatBody('x'));
      assert.equal(noKey.status, 401);
      assert.equal(((await noKey.json()) as ErrorResponse).error.code, 'invalid_api_key');
      const ok = await post(`${base}/chat/completions`, chatBody('x'), {
        headers: { authorization: 'Bearer sk-test' },
      });
      assert.equal(ok.status, 200);
      await ok.text();
    } finally {
      await server.stop();
    }
  });

  it('stop() returns promptly with a hung request and destroys its socket', async () => {
    const server = new FakeLlmServer({ modelIds: ['m1', 'm2'] });
    const base = await server.start();
    server.injectFaults([{ kind: 'timeout' }]);
    const hung = post(`${base}/chat/completions`, chatBody('x'), { signal: AbortSignal.timeout(10_000) }).then(
      () => 'answered',
      () => 'failed',
    );
    const deadline = Date.now() + 2000;
    while (server.stats().chatCompletions < 1 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 10));
    }
    assert.equal(server.stats().chatCompletions, 1);
    const t0 = Date.now();
    await server.stop();
    assert.ok(Date.now() - t0 < 1000, `stop took ${Date.now() - t0} ms`);
    assert.equal(await hung, 'failed');
  });
});
