import { ErrorType, PolyglotError, llmErrorForStatus, parseRetryAfter } from '../common/errors';

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

  async chat(req: ChatRequest, signal?: AbortSignal): Promise<ChatResult> {
    const url = `${this.opts.baseUrl.replace(/\/+$/, '')}/chat/completions`;
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
        body: JSON.stringify(req),
        signal: combined,
      });
      text = await res.text();
    } catch (e) {
      if (timeout.aborted)
        throw new PolyglotError(ErrorType.LlmTimeout, `no answer from ${url} within ${this.opts.timeoutMs} ms`);
      if (signal?.aborted) throw e;
      const cause = e instanceof Error ? ((e.cause as Error | undefined)?.message ?? e.message) : String(e);
      throw new PolyglotError(ErrorType.LlmConnection, `cannot reach ${url}: ${cause}`);
    }
    if (!res.ok) throw llmErrorForStatus(res.status, text, parseRetryAfter(res.headers.get('retry-after'), Date.now()));
    let body: {
      choices?: { message?: { content?: string | null }; finish_reason?: string }[];
      usage?: { prompt_tokens?: number; completion_tokens?: number };
    };
    try {
      body = JSON.parse(text) as typeof body;
    } catch {
      throw new PolyglotError(
        ErrorType.LlmBadResponse,
        `${url} answered ${res.status} with a body that is not JSON: ${text.slice(0, 120)}`,
      );
    }
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
