import { ErrorType, PolyglotError, isPolyglotError, llmErrorForStatus, parseRetryAfter } from '../common/errors';

/**
 * A minimal OpenAI-compatible chat client. It does no retries of its own: every failure is thrown as
 * a typed PolyglotError and Temporal decides whether and when to retry, so retries show in history.
 */

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

export interface ChatRequest {
  model: string;
  messages: ChatMessage[];
  temperature?: number;
  top_p?: number;
  max_tokens?: number;
  seed?: number;
  response_format?: {
    type: 'json_schema';
    json_schema: { name: string; schema: Record<string, unknown>; strict?: boolean };
  };
}

/** The `finish_reason` of an answer cut at `max_tokens` (OpenAI-compatible servers, vLLM included). */
export const LENGTH_LIMIT_REASON = 'length';

export interface ChatResult {
  content: string;
  finishReason: string;
  promptTokens: number;
  completionTokens: number;
}

export interface ChatClientOptions {
  baseUrl: string;
  /** The key itself, read from the environment by the caller; never logged. */
  apiKey?: string;
  timeoutMs: number;
  fetchImpl?: typeof fetch;
}

export class ChatClient {
  constructor(private readonly opts: ChatClientOptions) {}

  /** POST JSON and return the parsed body; every failure becomes a typed PolyglotError. */
  private async post<T>(url: string, payload: unknown, signal?: AbortSignal): Promise<T> {
    const timeout = AbortSignal.timeout(this.opts.timeoutMs);
    const combined = signal ? AbortSignal.any([signal, timeout]) : timeout;
    let res: Response;
    let text: string;
    try {
      res = await (this.opts.fetchImpl ?? fetch)(url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          ...(this.opts.apiKey ? { authorization: `Bearer ${this.opts.apiKey}` } : {}),
        },
        body: JSON.stringify(payload),
        signal: combined,
        // Never follow a redirect: it would carry the Authorization header to wherever the server points.
        redirect: 'manual',
      });
      text = await res.text();
    } catch (e) {
      if (timeout.aborted)
        throw new PolyglotError(ErrorType.LlmTimeout, `no answer from ${url} within ${this.opts.timeoutMs} ms`);
      if (signal?.aborted || isPolyglotError(e)) throw e;
      const cause = e instanceof Error ? ((e.cause as Error | undefined)?.message ?? e.message) : String(e);
      throw new PolyglotError(ErrorType.LlmConnection, `cannot reach ${url}: ${cause}`);
    }
    if (res.status >= 300 && res.status < 400) {
      throw new PolyglotError(
        ErrorType.LlmBadRequest,
        `${url} answered ${res.status}, a redirect; redirects are not followed (the API key would go along): set baseUrl to the final URL`,
      );
    }
    if (!res.ok) throw llmErrorForStatus(res.status, text, parseRetryAfter(res.headers.get('retry-after'), Date.now()));
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new PolyglotError(
        ErrorType.LlmBadResponse,
        `${url} answered ${res.status} with a body that is not JSON: ${text.slice(0, 120)}`,
      );
    }
  }

  private get base(): string {
    return this.opts.baseUrl.replace(/\/+$/, '');
  }

  /** `/v1/embeddings`: one vector per input, in input order. */
  async embed(model: string, input: string[], signal?: AbortSignal): Promise<number[][]> {
    const body = await this.post<{ data?: { index?: number; embedding?: number[] }[] }>(
      `${this.base}/embeddings`,
      { model, input },
      signal,
    );
    const data = body.data ?? [];
    if (data.length !== input.length || data.some((d) => !Array.isArray(d.embedding))) {
      throw new PolyglotError(
        ErrorType.LlmBadResponse,
        `embeddings: expected ${input.length} vectors, got ${data.length}`,
      );
    }
    return data
      .map((d, i) => ({ i: d.index ?? i, v: d.embedding! }))
      .sort((a, b) => a.i - b.i)
      .map((d) => d.v);
  }

  /** `/v1/completions` with echo + logprobs and no new tokens: the log-probability of each prompt token. */
  async promptLogprobs(
    model: string,
    prompt: string,
    signal?: AbortSignal,
  ): Promise<{ tokens: string[]; logprobs: (number | null)[] }> {
    const body = await this.post<{
      choices?: { logprobs?: { tokens?: string[]; token_logprobs?: (number | null)[] } }[];
    }>(`${this.base}/completions`, { model, prompt, echo: true, max_tokens: 0, logprobs: 0, temperature: 0 }, signal);
    const lp = body.choices?.[0]?.logprobs;
    if (!lp?.tokens || !lp.token_logprobs || lp.tokens.length !== lp.token_logprobs.length) {
      throw new PolyglotError(ErrorType.LlmBadResponse, 'completions: no echo logprobs in the answer');
    }
    return { tokens: lp.tokens, logprobs: lp.token_logprobs };
  }

  /** `/tokenize` (vLLM and the local server serve it beside `/v1`): token count of a text. */
  async countTokens(model: string, text: string, signal?: AbortSignal): Promise<number> {
    const root = this.base.replace(/\/v1$/, '');
    const body = await this.post<{ count?: number; tokens?: unknown[] }>(
      `${root}/tokenize`,
      { model, prompt: text, content: text, add_special_tokens: false },
      signal,
    );
    const n = body.count ?? body.tokens?.length;
    if (typeof n !== 'number') throw new PolyglotError(ErrorType.LlmBadResponse, 'tokenize: no tokens in the answer');
    return n;
  }

  async chat(req: ChatRequest, signal?: AbortSignal): Promise<ChatResult> {
    const url = `${this.base}/chat/completions`;
    const body = await this.post<{
      choices?: { message?: { content?: string | null }; finish_reason?: string }[];
      usage?: { prompt_tokens?: number; completion_tokens?: number };
    }>(url, req, signal);
    const choice = body.choices?.[0];
    if (!choice) throw new PolyglotError(ErrorType.LlmBadResponse, `${url} answered without choices`);
    const content = choice.message?.content ?? '';
    return {
      content,
      finishReason: choice.finish_reason ?? 'stop',
      // Servers that omit usage are charged an estimate (4 chars a token) so budgets still bind.
      promptTokens: body.usage?.prompt_tokens ?? Math.ceil(JSON.stringify(req.messages).length / 4),
      completionTokens: body.usage?.completion_tokens ?? Math.ceil(content.length / 4),
    };
  }
}

/** Parse a structured `{prompt, response}` answer; undefined when it is not valid (counted, not thrown). */
export function parseSftJson(content: string): { prompt: string; response: string } | undefined {
  const trimmed = content
    .trim()
    .replace(/^```(?:json)?\s*/i, '')
    .replace(/\s*```$/, '');
  try {
    const v = JSON.parse(trimmed) as unknown;
    if (v && typeof v === 'object' && !Array.isArray(v)) {
      const { prompt, response } = v as Record<string, unknown>;
      if (typeof prompt === 'string' && typeof response === 'string' && prompt.trim() && response.trim()) {
        return { prompt: prompt.trim(), response: response.trim() };
      }
    }
  } catch {
    // unparseable: the caller counts it
  }
  return undefined;
}
