#!/usr/bin/env node
// @ts-check
// Polyglot's local OpenAI-compatible LLM server: a small node:http front end over node-llama-cpp (CPU only),
// used as the embedded default model and by tests. Background: docs/local-stack.md, "Local LLM".
//
//   node tools/local-llm/server.mjs --model .tools/models/SmolLM2-135M-Instruct.Q4_1.gguf \
//     [--host 127.0.0.1] [--port 8000] [--model-id smollm2-135m] [--context 2048] [--threads 1] [--kv-cache f16]
//
// Prints exactly one line to stdout once ready: `local-llm listening on http://HOST:PORT model=ID`.
// Everything else (llama.cpp logs, errors) goes to stderr, so callers can simply wait for that line.
// Exit codes: 0 after SIGTERM/SIGINT, 2 for bad arguments, a missing model file or a taken port.
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import http from 'node:http';
import { parseArgs } from 'node:util';

// node-llama-cpp reads these when its module is evaluated, hence the dynamic import below: never download or
// compile llama.cpp, never probe CUDA/Vulkan (only the CPU prebuilt, @node-llama-cpp/linux-x64, is installed).
process.env.NODE_LLAMA_CPP_SKIP_DOWNLOAD = 'true';
process.env.NODE_LLAMA_CPP_GPU = 'false';
const { getLlama, LlamaChat, LlamaLogLevel, resolveChatWrapper } = await import('node-llama-cpp');
process.once('SIGTERM', shutdown);
process.once('SIGINT', shutdown);

/** @typedef {import('node-llama-cpp').Token} Token */
const MAX_BODY_BYTES = 1024 * 1024;
const LOGPROB_CHUNK = 32; // prompt tokens per controlledEvaluate call: each returns a full-vocabulary Map per token

/** @param {string} msg @returns {never} */
function die(msg) {
  process.stderr.write(`local-llm: ${msg}\n`);
  process.exit(2);
}

// ---- command line -------------------------------------------------------------------------------------------
const USAGE =
  'usage: server.mjs --model <path.gguf> [--host H] [--port N] [--model-id ID] [--context N] [--threads N] [--kv-cache f16|f32]';
const defaults = {
  host: '127.0.0.1', port: '8000', 'model-id': 'smollm2-135m', context: '2048', threads: '1', 'kv-cache': 'f16',
};
const str = /** @type {const} */ ({ type: 'string' });
/** @type {typeof defaults & {model?: string}} */
let args = defaults;
try {
  const options = { model: str, host: str, port: str, 'model-id': str, context: str, threads: str, 'kv-cache': str };
  args = { ...defaults, ...parseArgs({ options, strict: true }).values };
} catch (e) {
  die(`${/** @type {Error} */ (e).message}\n${USAGE}`);
}
const { host, model: modelPath, 'model-id': modelId } = args;
const port = Number(args.port), contextSize = Number(args.context), threads = Number(args.threads);
if (!modelPath) die(`--model is required\n${USAGE}`);
if (!Number.isInteger(port) || port < 0 || port > 65535) die(`--port must be an integer 0-65535, got ${args.port}`);
if (!Number.isInteger(contextSize) || contextSize < 64) die(`--context must be an integer >= 64, got ${args.context}`);
if (!Number.isInteger(threads) || threads < 1) die(`--threads must be an integer >= 1, got ${args.threads}`);
// The KV cache is float16 by default (llama.cpp's choice, half the memory). Scoring against a float32 reference
// (the perplexity parity test, with an F32 GGUF) needs float32 attention too; see where the context is made.
const kvCache = args['kv-cache'];
if (kvCache !== 'f16' && kvCache !== 'f32') die(`--kv-cache must be f16 or f32, got ${kvCache}`);
if (!existsSync(modelPath))
  die(`model file not found: ${modelPath}\n  fix: run scripts/setup.sh (it puts the GGUF in .tools/models/)`);

// ---- model state and the request queue --------------------------------------------------------------------
// One model, one context, ONE sequence, filled in by the start-up code at the bottom. All model work goes
// through `enqueue`, so two requests never touch the sequence at once (and 2 CPU cores gain nothing from more).
/** @type {import('node-llama-cpp').Llama} */ let llama;
/** @type {import('node-llama-cpp').LlamaModel} */ let model;
/** @type {import('node-llama-cpp').LlamaContextSequence} */ let sequence;
/** @type {import('node-llama-cpp').ChatWrapper} */ let chatWrapper;
let isReady = false;
/** @type {(value?: unknown) => void} */ let markReady = () => {};
const ready = new Promise((resolve) => (markReady = resolve));
/** @type {Map<string, import('node-llama-cpp').LlamaGrammar>} */
const grammarCache = new Map(); // compiling a grammar takes a few ms, and sweeps send the same schema each time

let queueTail = Promise.resolve();
/** Runs `job` after all earlier jobs, on a cleared sequence, so that every request is independent.
 * @template T @param {() => Promise<T>} job @returns {Promise<T>} */
function enqueue(job) {
  const run = queueTail.then(async () => {
    await sequence.clearHistory();
    return job();
  });
  queueTail = run.then(noop, noop); // a failed request must not stall the ones queued behind it
  return run;
}
function noop() {}

// ---- request validation -----------------------------------------------------------------------------------
class HttpError extends Error {
  /** @param {number} status @param {string} message @param {string | null} [code] @param {string} [type] */
  constructor(status, message, code = 'invalid_value', type = 'invalid_request_error') {
    super(message);
    this.status = status;
    this.code = code;
    this.type = type;
  }
}
/** A 400 that names the offending field. @param {string} field @param {string} problem */
const badField = (field, problem) => new HttpError(400, `'${field}' ${problem}`);

/** An optional number field within [min, max].
 * @param {any} body @param {string} field @param {{min: number, max: number, def?: number, int?: boolean}} spec */
function numField(body, field, { min, max, def, int = false }) {
  const v = body[field];
  if (v === undefined || v === null) return def;
  if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > max || (int && !Number.isInteger(v)))
    throw badField(field, `must be ${int ? 'an integer' : 'a number'} from ${min} to ${max}`);
  return v;
}
/** @param {any} body @param {number} min @param {number} def @returns {number} */
const maxTokensOf = (body, min, def) => numField(body, 'max_tokens', { min, max: contextSize, def, int: true }) ?? def;
/** Sampling options shared by both generation endpoints. Default temperature 0 (greedy), unlike OpenAI's 1:
 * deterministic output for tests, and a 135M model rambles when sampled. @param {any} body */
const samplingOf = (body) => ({
  temperature: numField(body, 'temperature', { min: 0, max: 2, def: 0 }),
  topP: numField(body, 'top_p', { min: 0, max: 1 }),
  seed: numField(body, 'seed', { min: 0, max: 2 ** 31, int: true }),
});

/** @param {number} promptTokens @param {number} maxTokens */
function checkFitsContext(promptTokens, maxTokens) {
  if (promptTokens + maxTokens > contextSize) {
    const msg = `prompt (${promptTokens} tokens) + max_tokens (${maxTokens}) exceeds the context size ${contextSize}`;
    throw new HttpError(400, msg, 'context_length_exceeded');
  }
}

/** Grammar for `response_format`, or undefined for free text. @param {any} format */
async function grammarFor(format) {
  if (format === undefined || format === null || format.type === 'text') return undefined;
  if (format.type === 'json_object') return llama.getGrammarFor('json');
  if (format.type !== 'json_schema')
    throw badField('response_format.type', "must be 'text', 'json_object' or 'json_schema'");
  const schema = format.json_schema?.schema;
  if (typeof schema !== 'object' || schema === null)
    throw badField('response_format.json_schema.schema', 'must be an object');
  const key = JSON.stringify(schema);
  if (!grammarCache.has(key)) {
    try {
      if (grammarCache.size >= 64) grammarCache.clear();
      grammarCache.set(key, await llama.createGrammarForJsonSchema(schema));
    } catch (e) {
      throw badField('response_format.json_schema.schema', `is not supported: ${/** @type {Error} */ (e).message}`);
    }
  }
  return grammarCache.get(key);
}

// ---- endpoints --------------------------------------------------------------------------------------------
const newId = (/** @type {string} */ prefix) => `${prefix}-${randomUUID().replaceAll('-', '')}`;
const usage = (/** @type {number} */ prompt, /** @type {number} */ completion) =>
  ({ prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion });

/** @param {any} body */
async function chatCompletions(body) {
  if (body.stream) throw badField('stream', 'is not supported');
  if (!Array.isArray(body.messages) || body.messages.length === 0)
    throw badField('messages', 'must be a non-empty array');
  /** @type {import('node-llama-cpp').ChatHistoryItem[]} */
  const history = body.messages.map((/** @type {any} */ m, /** @type {number} */ i) => {
    let text = m?.content; // a string, or OpenAI's array of {type: 'text', text} parts
    if (Array.isArray(text) && text.every((p) => p?.type === 'text' && typeof p.text === 'string'))
      text = text.map((p) => p.text).join('');
    if (typeof text !== 'string')
      throw badField(`messages[${i}].content`, 'must be a string or an array of text parts');
    if (m.role === 'system' || m.role === 'developer') return { type: 'system', text };
    if (m.role === 'user') return { type: 'user', text };
    if (m.role === 'assistant') return { type: 'model', response: [text] };
    throw badField(`messages[${i}].role`, "must be 'system', 'user' or 'assistant'");
  });
  history.push({ type: 'model', response: [] }); // the empty turn that the model completes
  const maxTokens = maxTokensOf(body, 1, 256);
  const sampling = samplingOf(body);
  const grammar = await grammarFor(body.response_format);
  const promptText = chatWrapper.generateContextState({ chatHistory: history }).contextText;
  const promptTokens = promptText.tokenize(model.tokenizer).length;
  checkFitsContext(promptTokens, maxTokens);
  return enqueue(async () => {
    const chat = new LlamaChat({ contextSequence: sequence, chatWrapper, autoDisposeSequence: false });
    let completionTokens = 0;
    try {
      const onToken = (/** @type {Token[]} */ t) => void (completionTokens += t.length);
      const res = await chat.generateResponse(history, { ...sampling, maxTokens, grammar, onToken });
      stats.chat_completions++;
      const finish_reason = res.metadata.stopReason === 'maxTokens' ? 'length' : 'stop';
      return {
        id: newId('chatcmpl'), object: 'chat.completion', created: Math.floor(Date.now() / 1000), model: modelId,
        choices: [{ index: 0, message: { role: 'assistant', content: res.response }, logprobs: null, finish_reason }],
        usage: usage(promptTokens, completionTokens),
      };
    } finally {
      chat.dispose({ disposeSequence: false });
    }
  });
}

/** `probs` maps token -> probability for one position; appends log P(token) and the top-n alternatives.
 * The Map comes sorted by probability. @param {Map<Token, number> | undefined} probs @param {Token} token
 * @param {number} n @param {{lp: (number | null)[], top: (Record<string, number> | null)[]}} out */
function pushLogprob(probs, token, n, out) {
  const p = probs?.get(token) ?? 0;
  out.lp.push(p > 0 ? Math.log(p) : -1e9); // -1e9, not -Infinity: JSON has no infinities
  /** @type {Record<string, number> | null} */ let top = null;
  if (n > 0 && probs) {
    top = {};
    for (const [t, q] of probs) {
      if (Object.keys(top).length >= n) break;
      top[model.detokenize([t], true)] = Math.log(q);
    }
  }
  out.top.push(top);
}

/** Legacy completions; with `echo` + `logprobs` it scores the prompt (perplexity, lm-eval style). @param {any} body */
async function completions(body) {
  if (body.stream) throw badField('stream', 'is not supported');
  const prompt = Array.isArray(body.prompt) && body.prompt.length === 1 ? body.prompt[0] : body.prompt;
  if (typeof prompt !== 'string') throw badField('prompt', 'must be a string');
  const echo = body.echo === true;
  const maxTokens = maxTokensOf(body, echo ? 0 : 1, 16); // 0 only makes sense with echo
  const nTop = numField(body, 'logprobs', { min: 0, max: 20, int: true });
  const sampling = samplingOf(body);
  const tokens = model.tokenize(prompt, true); // as llama-server does: special tokens written in the prompt count
  // Condition on BOS when the model wants one; the first prompt token still gets no logprob, as with OpenAI.
  const bos = model.tokens.shouldPrependBosToken && model.tokens.bos != null ? [model.tokens.bos] : [];
  const input = [...bos, ...tokens];
  if (input.length === 0) throw badField('prompt', 'must not be empty');
  checkFitsContext(input.length, maxTokens);

  return enqueue(async () => {
    /** @type {{lp: (number | null)[], top: (Record<string, number> | null)[]}} */
    const scores = { lp: [], top: [] };
    if (echo && nTop !== undefined) {
      // Evaluate all but the last input token, asking for the next-token distribution at each position: the
      // distribution after input[i] scores input[i + 1]. Temperature 0 makes the sampler greedy, which leaves the
      // full softmax untouched (top-k/top-p, the defaults otherwise, would cut and renormalize it). Chunked,
      // because each position yields a Map over the whole vocabulary (49k entries for SmolLM2). That hand-over to
      // JS costs ~35 ms per token, ten times the evaluation itself; node-llama-cpp has no cheaper way to logits.
      for (let s = 0; s < input.length - 1; s += LOGPROB_CHUNK) {
        const chunk = input.slice(s, Math.min(s + LOGPROB_CHUNK, input.length - 1));
        const next = { generateNext: { probabilities: true, options: { temperature: 0 } } };
        const out = await sequence.controlledEvaluate(chunk.map((t) => [t, next]));
        chunk.forEach((_, j) => pushLogprob(out[j]?.next.probabilities, input[s + j + 1], nTop, scores));
      }
      if (bos.length > 0) {
        scores.lp.shift(); // P(first token | BOS): dropped, as OpenAI does
        scores.top.shift();
      }
      if (tokens.length > 0) {
        scores.lp.unshift(null);
        scores.top.unshift(null);
      }
    } else if (maxTokens > 0 && input.length > 1) {
      await sequence.evaluateWithoutGeneratingNewTokens(input.slice(0, -1));
    }

    /** @type {Token[]} */ const generated = [];
    let finishReason = maxTokens === 0 ? 'length' : 'stop'; // the generator just ends at an end-of-text token
    if (maxTokens > 0) {
      // Feeding the last prompt token generates from there. Logprobs of generated tokens come from the sampler's
      // distribution: the exact softmax at temperature 0, the top-k/top-p-truncated one otherwise.
      const meta = /** @type {{readonly probabilities: true}} */ ({ probabilities: nTop !== undefined });
      for await (const { token, probabilities } of sequence.evaluateWithMetadata(input.slice(-1), meta, sampling)) {
        generated.push(token);
        if (nTop !== undefined) pushLogprob(probabilities, token, nTop, scores);
        if (generated.length >= maxTokens) {
          finishReason = 'length';
          break;
        }
      }
    }

    let logprobs = null;
    if (nTop !== undefined) {
      const pieces = (echo ? [...tokens, ...generated] : generated).map((t) => model.detokenize([t], true));
      let offset = 0;
      const text_offset = pieces.map((piece) => (offset += piece.length) - piece.length);
      logprobs = { tokens: pieces, token_logprobs: scores.lp, top_logprobs: scores.top, text_offset };
    }
    const text = (echo ? prompt : '') + model.detokenize(generated, false, tokens);
    return {
      id: newId('cmpl'), object: 'text_completion', created: Math.floor(Date.now() / 1000), model: modelId,
      choices: [{ index: 0, text, logprobs, finish_reason: finishReason }],
      usage: usage(tokens.length, generated.length),
    };
  });
}

/** @param {any} body */
function tokenize(body) {
  const content = body.content ?? body.prompt; // llama-server says `content`, OpenAI-style clients `prompt`
  if (typeof content !== 'string') throw badField('content', "must be a string (or pass 'prompt')");
  const tokens = model.tokenize(content, true);
  return { tokens, count: tokens.length };
}

// Tests count LLM calls here; `requests` is keyed by known paths only, so random URLs cannot grow it.
const stats = { requests: /** @type {Record<string, number>} */ ({}), chat_completions: 0, errors: 0 };
/** @type {Record<string, (body: any) => unknown>} */
const routes = {
  'GET /health': () => ({ ok: true }),
  'GET /stats': () => stats,
  'GET /v1/models': () => ({
    object: 'list',
    data: [{ id: modelId, object: 'model', created: 0, owned_by: 'polyglot-local' }],
  }),
  'POST /v1/chat/completions': chatCompletions,
  'POST /v1/completions': completions,
  'POST /tokenize': tokenize,
};
const knownPaths = new Set(Object.keys(routes).map((route) => route.split(' ')[1]));

// ---- HTTP ---------------------------------------------------------------------------------------------------
/** @param {http.IncomingMessage} req @returns {Promise<unknown>} */
function readJsonBody(req) {
  return new Promise((resolve, reject) => {
    const tooLarge = () => new HttpError(413, `request body exceeds ${MAX_BODY_BYTES} bytes`, 'body_too_large');
    /** @type {Buffer[]} */ const chunks = [];
    let size = 0;
    // On overflow keep draining rather than destroying the socket, or the client sees a reset instead of the 413.
    req.on('data', (/** @type {Buffer} */ chunk) => {
      size += chunk.length;
      if (size <= MAX_BODY_BYTES) chunks.push(chunk);
      else {
        chunks.length = 0;
        reject(tooLarge());
      }
    });
    req.on('error', reject);
    req.on('end', () => {
      try {
        resolve(JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}'));
      } catch {
        reject(new HttpError(400, 'request body is not valid JSON', 'invalid_json'));
      }
    });
    if (Number(req.headers['content-length']) > MAX_BODY_BYTES) reject(tooLarge());
  });
}

const server = http.createServer(async (req, res) => {
  await ready; // a request that arrives while the model loads just waits
  const path = new URL(req.url ?? '/', 'http://localhost').pathname.replace(/\/+$/, '') || '/';
  const statKey = knownPaths.has(path) ? path : 'other';
  stats.requests[statKey] = (stats.requests[statKey] ?? 0) + 1;
  let status = 200, payload;
  try {
    const route = routes[`${req.method} ${path}`];
    if (!route && knownPaths.has(path))
      throw new HttpError(405, `${req.method} is not allowed on ${path}`, 'method_not_allowed');
    if (!route) throw new HttpError(404, `unknown endpoint ${req.method} ${path}`, 'not_found', 'not_found_error');
    const body = req.method === 'POST' ? await readJsonBody(req) : {};
    if (typeof body !== 'object' || body === null || Array.isArray(body))
      throw new HttpError(400, 'request body must be a JSON object', 'invalid_json');
    payload = await route(body);
  } catch (e) {
    // Every failure becomes an OpenAI-style error response; nothing a request does may take the server down.
    const cause = /** @type {any} */ (e);
    const err =
      cause instanceof HttpError ? cause : new HttpError(500, String(cause?.message ?? cause), null, 'server_error');
    if (err.status === 500) process.stderr.write(`local-llm: ${req.method} ${path} failed: ${cause?.stack ?? cause}\n`);
    stats.errors++;
    status = err.status;
    payload = { error: { message: err.message, type: err.type, code: err.code } };
    if (status === 413) res.setHeader('Connection', 'close'); // the rest of the body was never read
  }
  res.writeHead(status, { 'Content-Type': 'application/json' }).end(JSON.stringify(payload));
});

// ---- start-up and shutdown ----------------------------------------------------------------------------------
// Bind the port first, so that a taken port fails in half a second rather than after loading the model.
await new Promise((resolve, reject) => server.once('error', reject).listen(port, host, () => resolve(undefined))).catch(
  (/** @type {NodeJS.ErrnoException} */ e) =>
    die(e.code === 'EADDRINUSE'
      ? `port ${port} on ${host} is already in use (pass another --port, or stop the server holding it)`
      : `cannot listen on ${host}:${port}: ${e.message}`),
);
server.on('error', (e) => process.stderr.write(`local-llm: server error: ${e.message}\n`));

// Threads: on CPU node-llama-cpp defaults to max(4, cores). llama.cpp's threads busy-wait for each other, so more
// threads than free cores is ruinous. Measured on the 2-core dev VM (SmolLM2-135M Q4_1): mostly idle, 1 thread
// 81 tok/s and 2 threads ~100 tok/s; with another job keeping the cores busy, 1 thread ~65 tok/s, 2 threads
// ~7 tok/s, and the default 4 threads 0.2 tok/s. Hence 1 by default (tests share the machine); --threads 2 on an
// otherwise idle box.
llama = await getLlama({
  gpu: false,
  build: 'never',
  maxThreads: threads,
  logLevel: LlamaLogLevel.error,
  logger: (level, message) => process.stderr.write(`[llama.cpp ${level}] ${message}\n`),
});
model = await llama.loadModel({ modelPath });
// float32 keys and values, and no flash attention (llama.cpp's CPU kernel for it rounds to f16 on the way):
// measured on SmolLM2 F32, that takes perplexities from ~1.6e-3 to ~1.7e-4 relative off transformers' float32.
const precision = kvCache === 'f32'
  ? { experimentalKvCacheKeyType: 'F32', experimentalKvCacheValueType: 'F32', flashAttention: false }
  : {};
sequence = (await model.createContext({ contextSize, sequences: 1, threads, ...precision })).getSequence();
chatWrapper = resolveChatWrapper(model); // from the GGUF's chat template; resolved once
isReady = true;
markReady();
const boundPort = /** @type {import('node:net').AddressInfo} */ (server.address()).port; // differs when --port 0
process.stdout.write(`local-llm listening on http://${host}:${boundPort} model=${modelId}\n`);

async function shutdown() {
  if (!isReady) process.exit(0); // mid-load, disposing would make the pending load throw; the OS frees it all
  server.close();
  server.closeAllConnections();
  await llama.dispose().catch(noop);
  process.exit(0);
}
