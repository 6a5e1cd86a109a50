/**
 * Deterministic fake OpenAI-compatible HTTP server.
 *
 * Stands in for HOSTED inference in tests and benchmarks, including its failure modes (rate limits, server errors,
 * hung requests, malformed bodies, truncated output). Answers are a pure function of the request, so identical
 * requests always receive identical responses.
 *
 * Routes:
 *   GET  /v1/models             list of configured model ids
 *   POST /v1/chat/completions   chat completion (or an injected fault)
 *   POST /v1/embeddings         unit vectors (16 dims) derived from each input's hash
 *   POST /v1/completions        echo + logprobs of the prompt's whitespace tokens (perplexity), no new tokens
 *   POST /tokenize              whitespace token count (vLLM's /tokenize shape)
 *   GET  /_stats                counters as JSON (byPrompt as a plain object)
 *   POST /_faults               control: {faults: FakeFault[]} | {periodic: {everyN, fault}} | {latencyMs} | {clear: true}
 *
 * Run as a separate process: `node lib/test/support/fake-server.js --port 8099 --latency-ms 20 [--host H] [--api-key K]`.
 */
import { createHash } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export type FakeFaultKind = '429' | '500' | '400' | '401' | 'timeout' | 'garbage' | 'truncated' | 'empty';

export interface FakeFault {
  kind: FakeFaultKind;
  retryAfterSeconds?: number;
}

export interface FakeServerOptions {
  /** Interface to bind; default 127.0.0.1. */
  host?: string;
  /** Port to bind; default 0 (ephemeral). */
  port?: number;
  /** Added to every chat completion (normal or faulted, except 'timeout'); default 0. */
  latencyMs?: number;
  /** Served by /v1/models; default ['fake-model']. */
  modelIds?: string[];
  /** Expected API key. When set (non-empty), chat requests without `Authorization: Bearer <key>` get 401. */
  requireApiKey?: string;
}

export interface FakeServerStats {
  /** Every chat-completion request received (served, faulted or rejected). */
  chatCompletions: number;
  /** Normal 200 answers. */
  served: number;
  /** Requests answered with an injected (queued or periodic) fault. */
  faulted: number;
  /** Requests rejected on their own merits: bad auth, oversized body, invalid JSON, invalid request shape. */
  rejected: number;
  /** Served (normal 200) answers keyed by the request hash (model, messages, temperature, seed). */
  byPrompt: Map<string, number>;
  /** Maximum number of chat-completion requests in flight at once. */
  concurrentPeak: number;
}

const FAULT_KINDS: readonly FakeFaultKind[] = ['429', '500', '400', '401', 'timeout', 'garbage', 'truncated', 'empty'];
const MAX_BODY_BYTES = 1024 * 1024;
/** Fixed timestamp so responses are byte-for-byte deterministic. */
const CREATED = 1_700_000_000;
const MAX_SCHEMA_DEPTH = 8;

const WORDS = [
  'the', 'quiet', 'river', 'carries', 'morning', 'light', 'across', 'a', 'wide', 'valley', 'where', 'old', 'teachers',
  'gather', 'to', 'share', 'simple', 'stories', 'about', 'patient', 'learning', 'and', 'bright', 'ideas', 'that',
  'travel', 'between', 'languages', 'with', 'careful', 'words', 'every', 'student', 'reads', 'slowly', 'under',
  'green', 'trees', 'while', 'small', 'birds', 'sing', 'near', 'open', 'windows', 'of', 'the', 'village', 'school',
  'some', 'questions', 'need', 'clear', 'answers', 'others', 'invite', 'long', 'conversations', 'over', 'warm', 'tea',
  'at', 'evening', 'time',
]; // prettier-ignore

export function isFakeFault(value: unknown): value is FakeFault {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Record<string, unknown>;
  if (typeof v.kind !== 'string' || !(FAULT_KINDS as readonly string[]).includes(v.kind)) return false;
  if (v.retryAfterSeconds !== undefined && (typeof v.retryAfterSeconds !== 'number' || v.retryAfterSeconds < 0)) {
    return false;
  }
  return true;
}

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

/** Deterministic pseudo-random stream derived from a seed string. */
class HashStream {
  private buf = Buffer.alloc(0);
  private pos = 0;
  private counter = 0;

  constructor(private readonly seed: string) {}

  private byte(): number {
    if (this.pos >= this.buf.length) {
      this.buf = createHash('sha256').update(`${this.seed}#${this.counter++}`).digest();
      this.pos = 0;
    }
    return this.buf[this.pos++] ?? 0;
  }

  /** Uniform-ish integer in [0, n). */
  int(n: number): number {
    if (n <= 1) return 0;
    const v = ((this.byte() << 24) | (this.byte() << 16) | (this.byte() << 8) | this.byte()) >>> 0;
    return v % n;
  }

  words(count: number): string[] {
    const out: string[] = [];
    for (let i = 0; i < count; i++) out.push(WORDS[this.int(WORDS.length)] ?? 'word');
    return out;
  }
}

function errorBody(message: string, type: string, code: string | null): string {
  return JSON.stringify({ error: { message, type, param: null, code } });
}

function messagesChars(messages: unknown[]): number {
  let total = 0;
  for (const m of messages) {
    const content = typeof m === 'object' && m !== null ? (m as Record<string, unknown>).content : undefined;
    if (typeof content === 'string') total += content.length;
    else if (Array.isArray(content)) {
      for (const part of content) {
        const text = typeof part === 'object' && part !== null ? (part as Record<string, unknown>).text : undefined;
        total += typeof text === 'string' ? text.length : JSON.stringify(part ?? null).length;
      }
    } else if (content !== undefined && content !== null) total += JSON.stringify(content).length;
  }
  return total;
}

type JsonObject = Record<string, unknown>;

function asObject(value: unknown): JsonObject | undefined {
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as JsonObject) : undefined;
}

/** Generates a deterministic value conforming (loosely) to a JSON schema. */
function valueForSchema(schema: unknown, name: string, hash: string, path: string, depth: number): unknown {
  const s = asObject(schema) ?? {};
  const rng = new HashStream(`${hash}/${path}`);
  if ('const' in s) return s.const;
  if (Array.isArray(s.enum) && s.enum.length > 0) return s.enum[rng.int(s.enum.length)];
  for (const key of ['anyOf', 'oneOf'] as const) {
    const options = s[key];
    if (Array.isArray(options)) {
      const nonNull = options.find((o) => asObject(o)?.type !== 'null');
      return valueForSchema(nonNull ?? options[0], name, hash, path, depth);
    }
  }
  let type = s.type;
  if (Array.isArray(type)) type = type.find((t) => t !== 'null') ?? type[0];
  if (type === undefined) type = asObject(s.properties) ? 'object' : 'string';

  switch (type) {
    case 'integer':
    case 'number': {
      const min = typeof s.minimum === 'number' ? s.minimum : 0;
      const max = typeof s.maximum === 'number' ? s.maximum : min + 99;
      if (type === 'integer') {
        const lo = Math.ceil(min);
        const hi = Math.max(lo, Math.floor(max));
        return lo + rng.int(hi - lo + 1);
      }
      return Math.round((min + (rng.int(10_001) / 10_000) * (max - min)) * 100) / 100;
    }
    case 'boolean':
      return rng.int(2) === 1;
    case 'null':
      return null;
    case 'array': {
      if (depth >= MAX_SCHEMA_DEPTH) return [];
      const minItems = typeof s.minItems === 'number' ? s.minItems : 0;
      const maxItems = typeof s.maxItems === 'number' ? s.maxItems : Math.max(minItems, 3);
      const count = Math.min(Math.max(minItems, Math.min(2, maxItems)), maxItems);
      const items: unknown[] = [];
      for (let i = 0; i < count; i++) items.push(valueForSchema(s.items, name, hash, `${path}[${i}]`, depth + 1));
      return items;
    }
    case 'object':
      return depth >= MAX_SCHEMA_DEPTH ? {} : objectForSchema(s, hash, path, depth + 1);
    default: {
      let text = `${name} ${hash.slice(0, 8)} ${rng.words(4 + rng.int(6)).join(' ')}.`;
      if (typeof s.minLength === 'number') while (text.length < s.minLength) text += ` ${rng.words(1).join('')}`;
      if (typeof s.maxLength === 'number' && text.length > s.maxLength) text = text.slice(0, s.maxLength);
      return text;
    }
  }
}

function objectForSchema(schema: JsonObject, hash: string, path: string, depth: number): JsonObject {
  const props = asObject(schema.properties) ?? {};
  const required = Array.isArray(schema.required)
    ? schema.required.filter((k): k is string => typeof k === 'string')
    : Object.keys(props);
  const out: JsonObject = {};
  for (const key of required) out[key] = valueForSchema(props[key], key, hash, `${path}.${key}`, depth);
  return out;
}

/**
 * A request in the Prometheus absolute-grading format (the rubric judge's default) asks for
 * "(feedback) [RESULT] (an integer number between 1 and 5)": it gets a feedback sentence and a verdict
 * derived from the request, so sweeps against this server grade deterministically.
 */
function asksForVerdict(messages: unknown[]): boolean {
  return messages.some((m) => {
    const content = asObject(m)?.content;
    return typeof content === 'string' && content.includes('[RESULT] (an integer number between 1 and 5)');
  });
}

function verdictAnswer(hash: string): string {
  return `${plainSentence(hash)} [RESULT] ${1 + new HashStream(`${hash}/verdict`).int(5)}`;
}

function plainSentence(hash: string): string {
  const rng = new HashStream(`${hash}/text`);
  const words = rng.words(10 + rng.int(8));
  const first = words[0] ?? 'the';
  words[0] = first.charAt(0).toUpperCase() + first.slice(1);
  return `${words.slice(0, 4).join(' ')} ${hash.slice(0, 8)} ${words.slice(4).join(' ')}.`;
}

interface ChatRequest {
  model: string;
  messages: unknown[];
  seed?: unknown;
  temperature?: unknown;
  response_format?: unknown;
  stream?: unknown;
}

function validateChatRequest(body: unknown): ChatRequest | string {
  const b = asObject(body);
  if (!b) return 'request body must be a JSON object';
  if (typeof b.model !== 'string' || b.model === '') return "'model' is required";
  if (!Array.isArray(b.messages) || b.messages.length === 0) return "'messages' must be a non-empty array";
  if (b.stream === true) return 'streaming is not supported by the fake server';
  return b as unknown as ChatRequest;
}

export class FakeLlmServer {
  private readonly host: string;
  private readonly port: number;
  private readonly modelIds: string[];
  private readonly apiKey: string | undefined;
  private latencyMs: number;
  private server: http.Server | undefined;
  private baseUrl: string | undefined;
  private faultQueue: FakeFault[] = [];
  private periodic: { everyN: number; fault: FakeFault } | null = null;
  private periodicCounter = 0;
  private inFlight = 0;
  private readonly pendingDelays = new Map<NodeJS.Timeout, () => void>();
  private counters = { chatCompletions: 0, served: 0, faulted: 0, rejected: 0, concurrentPeak: 0 };
  private metricCalls: Record<string, number> = {};
  private byPrompt = new Map<string, number>();

  constructor(opts: FakeServerOptions = {}) {
    this.host = opts.host ?? '127.0.0.1';
    this.port = opts.port ?? 0;
    this.latencyMs = Math.max(0, opts.latencyMs ?? 0);
    this.modelIds = opts.modelIds && opts.modelIds.length > 0 ? [...opts.modelIds] : ['fake-model'];
    this.apiKey = opts.requireApiKey ? opts.requireApiKey : undefined;
  }

  /** Base URL including `/v1`; throws before start(). */
  get url(): string {
    if (this.baseUrl === undefined) throw new Error('FakeLlmServer not started');
    return this.baseUrl;
  }

  start(): Promise<string> {
    if (this.server) return Promise.reject(new Error('FakeLlmServer already started'));
    const server = http.createServer((req, res) => this.handle(req, res));
    this.server = server;
    return new Promise<string>((resolve, reject) => {
      const onError = (err: Error): void => {
        this.server = undefined;
        reject(err);
      };
      server.once('error', onError);
      server.listen(this.port, this.host, () => {
        server.off('error', onError);
        const addr = server.address() as AddressInfo;
        const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
        this.baseUrl = `http://${host}:${addr.port}/v1`;
        resolve(this.baseUrl);
      });
    });
  }

  /** Closes the listener and destroys every open socket, including hung 'timeout' requests. */
  stop(): Promise<void> {
    const server = this.server;
    if (!server) return Promise.resolve();
    this.server = undefined;
    for (const [timer, release] of this.pendingDelays) {
      clearTimeout(timer);
      release();
    }
    this.pendingDelays.clear();
    return new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  }

  /** Queue faults: the next N chat-completion requests get these faults in order, then normal service. */
  injectFaults(faults: FakeFault[]): void {
    for (const f of faults) {
      if (!isFakeFault(f)) throw new Error(`invalid fake fault: ${JSON.stringify(f)}`);
      this.faultQueue.push({ ...f });
    }
  }

  clearFaults(): void {
    this.faultQueue = [];
    this.periodic = null;
    this.periodicCounter = 0;
  }

  /** Every Nth chat request (1-based count since this call) gets the fault, forever; null or N <= 0 disables. */
  setPeriodicFault(everyN: number, fault: FakeFault | null): void {
    if (fault !== null && !isFakeFault(fault)) throw new Error(`invalid fake fault: ${JSON.stringify(fault)}`);
    this.periodic = fault && Number.isInteger(everyN) && everyN > 0 ? { everyN, fault: { ...fault } } : null;
    this.periodicCounter = 0;
  }

  setLatency(ms: number): void {
    this.latencyMs = Number.isFinite(ms) && ms > 0 ? ms : 0;
  }

  stats(): FakeServerStats {
    return { ...this.counters, byPrompt: new Map(this.byPrompt) };
  }

  resetStats(): void {
    this.counters = { chatCompletions: 0, served: 0, faulted: 0, rejected: 0, concurrentPeak: this.inFlight };
    this.byPrompt = new Map();
  }

  // ---------------------------------------------------------------------------------------------------------------

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    const method = req.method ?? 'GET';
    if (path === '/v1/chat/completions' || path === '/chat/completions') {
      if (method !== 'POST') return this.sendJson(res, 405, errorBody('use POST', 'invalid_request_error', null));
      return this.handleChat(req, res);
    }
    if (method === 'POST' && (path === '/v1/embeddings' || path === '/v1/completions' || path === '/tokenize')) {
      this.readBody(req, res, (body) => this.handleMetricEndpoint(path, body, res));
      return;
    }
    if (path === '/v1/models' || path === '/models') {
      if (method !== 'GET') return this.sendJson(res, 405, errorBody('use GET', 'invalid_request_error', null));
      const data = this.modelIds.map((id) => ({ id, object: 'model', created: CREATED, owned_by: 'fake' }));
      return this.sendJson(res, 200, JSON.stringify({ object: 'list', data }));
    }
    if (path === '/_stats' && method === 'GET') {
      return this.sendJson(res, 200, JSON.stringify(this.statsJson()));
    }
    if (path === '/_faults' && method === 'POST') {
      this.readBody(req, res, (body) => this.handleControl(body, res));
      return;
    }
    this.sendJson(res, 404, errorBody(`no route for ${method} ${path}`, 'invalid_request_error', 'not_found'));
  }

  /**
   * The endpoints the intrinsic metrics call, answered as pure functions of the input, so a metric
   * computed twice (a crash, a retry) gives the same number. Counted in `metricCalls` by path.
   */
  private handleMetricEndpoint(path: string, raw: Buffer, res: http.ServerResponse): void {
    let body: Record<string, unknown>;
    try {
      body = JSON.parse(raw.toString('utf8')) as Record<string, unknown>;
    } catch {
      return this.sendJson(res, 400, errorBody('invalid JSON body', 'invalid_request_error', null));
    }
    this.metricCalls[path] = (this.metricCalls[path] ?? 0) + 1;
    const words = (t: unknown) =>
      String(t ?? '')
        .split(/\s+/)
        .filter(Boolean);
    if (path === '/v1/embeddings') {
      const input = Array.isArray(body.input) ? body.input : [body.input];
      const data = input.map((text, index) => {
        const h = createHash('sha256').update(String(text)).digest();
        const v = Array.from({ length: 16 }, (_, i) => h[i]! / 255 - 0.5);
        const norm = Math.sqrt(v.reduce((a, x) => a + x * x, 0)) || 1;
        return { object: 'embedding', index, embedding: v.map((x) => x / norm) };
      });
      return this.sendJson(res, 200, JSON.stringify({ object: 'list', data, model: body.model }));
    }
    if (path === '/v1/completions') {
      const tokens = words(body.prompt);
      const token_logprobs = tokens.map((t, i) =>
        i === 0 ? null : -((parseInt(sha256(t).slice(0, 4), 16) % 500) / 100 + 0.1),
      );
      const choices = [
        { index: 0, text: String(body.prompt ?? ''), logprobs: { tokens, token_logprobs }, finish_reason: 'length' },
      ];
      return this.sendJson(
        res,
        200,
        JSON.stringify({ object: 'text_completion', created: CREATED, model: body.model, choices }),
      );
    }
    const tokens = words(body.prompt ?? body.content);
    return this.sendJson(res, 200, JSON.stringify({ count: tokens.length, tokens: tokens.map((_, i) => i) }));
  }

  /** Calls to the metric endpoints by path (embeddings, completions, tokenize). */
  metricCallCounts(): Record<string, number> {
    return { ...this.metricCalls };
  }

  private statsJson(): JsonObject {
    const s = this.stats();
    return {
      chatCompletions: s.chatCompletions,
      served: s.served,
      faulted: s.faulted,
      rejected: s.rejected,
      concurrentPeak: s.concurrentPeak,
      inFlight: this.inFlight,
      queuedFaults: this.faultQueue.length,
      latencyMs: this.latencyMs,
      byPrompt: Object.fromEntries(s.byPrompt),
    };
  }

  private handleControl(raw: Buffer, res: http.ServerResponse): void {
    let body: JsonObject | undefined;
    try {
      body = asObject(raw.length === 0 ? {} : JSON.parse(raw.toString('utf8')));
    } catch {
      body = undefined;
    }
    if (!body) return this.sendJson(res, 400, errorBody('body must be a JSON object', 'invalid_request_error', null));
    const bad = (msg: string): void => this.sendJson(res, 400, errorBody(msg, 'invalid_request_error', null));

    if (body.faults !== undefined && !(Array.isArray(body.faults) && body.faults.every(isFakeFault))) {
      return bad("'faults' must be an array of {kind, retryAfterSeconds?}");
    }
    const periodic = body.periodic === null ? null : asObject(body.periodic);
    if (body.periodic !== undefined && body.periodic !== null) {
      if (
        !periodic ||
        typeof periodic.everyN !== 'number' ||
        (periodic.fault !== null && !isFakeFault(periodic.fault))
      ) {
        return bad("'periodic' must be {everyN: number, fault: FakeFault | null}");
      }
    }
    if (body.latencyMs !== undefined && (typeof body.latencyMs !== 'number' || body.latencyMs < 0)) {
      return bad("'latencyMs' must be a non-negative number");
    }

    if (body.clear === true) this.clearFaults();
    if (Array.isArray(body.faults)) this.injectFaults(body.faults as FakeFault[]);
    if (body.periodic === null) this.setPeriodicFault(0, null);
    else if (periodic) this.setPeriodicFault(periodic.everyN as number, (periodic.fault ?? null) as FakeFault | null);
    if (typeof body.latencyMs === 'number') this.setLatency(body.latencyMs);
    if (body.resetStats === true) this.resetStats();

    this.sendJson(
      res,
      200,
      JSON.stringify({
        ok: true,
        queuedFaults: this.faultQueue.length,
        periodic: this.periodic,
        latencyMs: this.latencyMs,
      }),
    );
  }

  private handleChat(req: http.IncomingMessage, res: http.ServerResponse): void {
    this.counters.chatCompletions++;
    this.inFlight++;
    if (this.inFlight > this.counters.concurrentPeak) this.counters.concurrentPeak = this.inFlight;
    res.once('close', () => {
      this.inFlight--;
    });

    if (this.apiKey !== undefined && req.headers.authorization !== `Bearer ${this.apiKey}`) {
      this.counters.rejected++;
      req.resume();
      return this.sendJson(
        res,
        401,
        errorBody('Incorrect API key provided.', 'authentication_error', 'invalid_api_key'),
      );
    }

    this.readBody(
      req,
      res,
      (raw) => {
        let parsed: unknown;
        try {
          parsed = JSON.parse(raw.toString('utf8'));
        } catch {
          this.counters.rejected++;
          return this.sendJson(res, 400, errorBody('request body is not valid JSON', 'invalid_request_error', null));
        }
        const request = validateChatRequest(parsed);
        if (typeof request === 'string') {
          this.counters.rejected++;
          return this.sendJson(res, 400, errorBody(request, 'invalid_request_error', null));
        }
        void this.answerChat(request, res);
      },
      () => {
        this.counters.rejected++;
      },
    );
  }

  private nextFault(): FakeFault | undefined {
    this.periodicCounter++;
    const queued = this.faultQueue.shift();
    if (queued) return queued;
    if (this.periodic && this.periodicCounter % this.periodic.everyN === 0) return this.periodic.fault;
    return undefined;
  }

  private async answerChat(request: ChatRequest, res: http.ServerResponse): Promise<void> {
    const fault = this.nextFault();
    if (fault) this.counters.faulted++;
    if (fault?.kind === 'timeout') return; // accept and never answer; stop() or the client closes the socket

    if (this.latencyMs > 0) await this.delay(this.latencyMs);
    if (res.destroyed || res.writableEnded || !this.server) return;

    const hash = sha256(
      JSON.stringify({
        model: request.model,
        messages: request.messages,
        seed: request.seed ?? null,
        temperature: request.temperature ?? null,
      }),
    );

    switch (fault?.kind) {
      case '429':
        return this.sendJson(
          res,
          429,
          errorBody('Rate limit reached (fake).', 'rate_limit_error', 'rate_limit_exceeded'),
          { 'retry-after': String(fault.retryAfterSeconds ?? 1) },
        );
      case '500':
        return this.sendJson(res, 500, errorBody('The server had an error (fake).', 'server_error', 'internal_error'));
      case '400':
        return this.sendJson(
          res,
          400,
          errorBody('Invalid request (fake).', 'invalid_request_error', 'invalid_request'),
        );
      case '401':
        return this.sendJson(
          res,
          401,
          errorBody('Incorrect API key provided (fake).', 'authentication_error', 'invalid_api_key'),
        );
      case 'garbage':
        res.writeHead(200, { 'content-type': 'text/html' });
        res.end('<html>oops');
        return;
      case 'truncated': {
        const full = JSON.stringify(this.jsonContent(request, hash) ?? { prompt: plainSentence(hash) });
        const content = full.slice(0, Math.max(2, Math.floor(full.length / 2)));
        return this.sendJson(res, 200, this.envelope(request, hash, content, 'length'));
      }
      case 'empty':
        return this.sendJson(res, 200, this.envelope(request, hash, '', 'stop'));
      default: {
        const obj = this.jsonContent(request, hash);
        const content =
          obj !== undefined
            ? JSON.stringify(obj)
            : asksForVerdict(request.messages)
              ? verdictAnswer(hash)
              : plainSentence(hash);
        this.counters.served++;
        // Keyed by the whole request identity (model, messages, sampling, seed): two teachers that
        // send the same prompt with other sampling are different requests, a retry is the same one.
        this.byPrompt.set(hash, (this.byPrompt.get(hash) ?? 0) + 1);
        return this.sendJson(res, 200, this.envelope(request, hash, content, 'stop'));
      }
    }
  }

  /** Object content for json_schema / json_object requests; undefined for plain text. */
  private jsonContent(request: ChatRequest, hash: string): JsonObject | undefined {
    const rf = asObject(request.response_format);
    if (rf?.type === 'json_schema') {
      const schema = asObject(asObject(rf.json_schema)?.schema);
      if (schema && asObject(schema.properties)) return objectForSchema(schema, hash, '$', 1);
      return { response: valueForSchema({ type: 'string' }, 'response', hash, '$.response', 1) };
    }
    if (rf?.type === 'json_object') {
      return { response: valueForSchema({ type: 'string' }, 'response', hash, '$.response', 1) };
    }
    return undefined;
  }

  private envelope(request: ChatRequest, hash: string, content: string, finishReason: string): string {
    const promptTokens = Math.ceil(messagesChars(request.messages) / 4);
    const completionTokens = Math.ceil(content.length / 4);
    return JSON.stringify({
      id: `chatcmpl-${hash.slice(0, 24)}`,
      object: 'chat.completion',
      created: CREATED,
      model: request.model,
      system_fingerprint: 'fp_fake',
      choices: [{ index: 0, message: { role: 'assistant', content }, logprobs: null, finish_reason: finishReason }],
      usage: {
        prompt_tokens: promptTokens,
        completion_tokens: completionTokens,
        total_tokens: promptTokens + completionTokens,
      },
    });
  }

  private delay(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.pendingDelays.delete(timer);
        resolve();
      }, ms);
      this.pendingDelays.set(timer, resolve);
    });
  }

  /** Reads the request body with a 1 MB cap; oversized bodies get 413 and `onRejected` is called. */
  private readBody(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    onBody: (body: Buffer) => void,
    onRejected?: () => void,
  ): void {
    const tooLarge = (): void => {
      onRejected?.();
      // Drain (and discard) the rest of the upload so the client can finish writing and read the 413.
      req.resume();
      this.sendJson(res, 413, errorBody('request body exceeds 1 MB', 'invalid_request_error', 'payload_too_large'));
    };
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > MAX_BODY_BYTES) return tooLarge();

    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    req.on('data', (chunk: Buffer) => {
      if (done) return;
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        done = true;
        chunks.length = 0;
        tooLarge();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => {
      if (done) return;
      done = true;
      onBody(Buffer.concat(chunks));
    });
    req.on('error', () => {
      done = true;
    });
  }

  private sendJson(
    res: http.ServerResponse,
    status: number,
    body: string,
    headers: http.OutgoingHttpHeaders = {},
  ): void {
    if (res.headersSent || res.destroyed) return;
    res.writeHead(status, {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(body),
      ...headers,
    });
    res.end(body);
  }
}

// -------------------------------------------------------------------------------------------------------------------
// CLI: node lib/test/support/fake-server.js [--port N] [--latency-ms N] [--host H] [--api-key K]
// The API key may also come from FAKE_LLM_API_KEY.

function parseCliArgs(argv: string[]): FakeServerOptions {
  const opts: FakeServerOptions = {};
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = argv[i + 1];
    const need = (): string => {
      if (value === undefined) throw new Error(`missing value for ${flag}`);
      i++;
      return value;
    };
    const num = (): number => {
      const n = Number(need());
      if (!Number.isFinite(n) || n < 0) throw new Error(`invalid number for ${flag}: ${value}`);
      return n;
    };
    switch (flag) {
      case '--port':
        opts.port = num();
        break;
      case '--latency-ms':
        opts.latencyMs = num();
        break;
      case '--host':
        opts.host = need();
        break;
      case '--api-key':
        opts.requireApiKey = need();
        break;
      case '--model':
        opts.modelIds = [...(opts.modelIds ?? []), need()];
        break;
      default:
        throw new Error(`unknown argument: ${flag}`);
    }
  }
  if (opts.requireApiKey === undefined && process.env.FAKE_LLM_API_KEY) {
    opts.requireApiKey = process.env.FAKE_LLM_API_KEY;
  }
  return opts;
}

async function main(): Promise<void> {
  const server = new FakeLlmServer(parseCliArgs(process.argv.slice(2)));
  const url = await server.start();
  console.log(`fake-llm listening on ${url}`);
  let stopping = false;
  const shutdown = (): void => {
    if (stopping) return;
    stopping = true;
    server.stop().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on('SIGTERM', shutdown);
  process.on('SIGINT', shutdown);
}

if (require.main === module) {
  main().catch((err: unknown) => {
    console.error(`fake-llm: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  });
}
