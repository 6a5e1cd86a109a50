/**
 * Perplexity of a response given its prompt (docs/method.md, "Perplexity").
 *
 * Values come from a server's `/v1/completions` with `echo` + `logprobs`: one log-probability per token of
 * prompt + response as the server tokenized it. Servers differ in what they put in front: vLLM echoes the BOS
 * token its tokenizer adds (first entry, logprob `null`); the local server and OpenAI-style ones echo none.
 * `responseBoundary` finds out from the counts instead of assuming either.
 */

/** Where the response starts in the echoed token list (same frame as the echoed logprobs). */
export interface Boundary {
  /** Tokens the server put in front of the text (a BOS token, say): echoed count minus the text's own count. */
  leading: number;
  /** Index of the first response token in the echo: leading + the prompt's own token count. */
  boundary: number;
}

/** Most leading special tokens a tokenizer adds (BOS, sometimes a prefix-space marker): more means the counts disagree. */
const MAX_LEADING = 4;

/**
 * The prompt/response boundary from counts taken with the server's own tokenizer: `promptTokens` and `textTokens`
 * are `/tokenize` counts of the prompt alone and of prompt + response without special tokens, `echoed` is the
 * number of tokens the echo returned for prompt + response. As in the reference, the prompt is tokenized alone, so
 * a merge across the join moves the boundary by the same token it moves there.
 */
export function responseBoundary(echoed: number, promptTokens: number, textTokens: number): Boundary {
  const leading = echoed - textTokens;
  if (!(leading >= 0 && leading <= MAX_LEADING) || promptTokens > textTokens)
    throw new Error(
      `the server's echo (${echoed} tokens) and /tokenize (${textTokens} for prompt + response, ${promptTokens} ` +
        `for the prompt) disagree; the perplexity endpoint must tokenize both the same way (same model and tokenizer)`,
    );
  return { leading, boundary: leading + promptTokens };
}

/**
 * Per-item perplexity (the corrected form): exp of the mean negative log-likelihood over the echoed tokens from
 * `boundary` on. A `null` logprob (the first token has no context) is skipped, as a label shifted out would be.
 */
export function responsePerplexity(logprobs: (number | null)[], boundary: number): number {
  const resp = logprobs.slice(boundary).filter((x): x is number => x !== null && Number.isFinite(x));
  if (!resp.length) return NaN;
  const nll = -resp.reduce((a, b) => a + b, 0) / resp.length;
  return Math.exp(nll);
}

/** What scoring an item needs from the server: `/tokenize` counts and the echo's logprobs. */
export interface ScoringEndpoint {
  countTokens(text: string): Promise<number>;
  promptLogprobs(text: string): Promise<(number | null)[]>;
}

export interface ScoredItem {
  /** Per-item perplexity (NaN when the response has no scorable token). */
  ppl: number;
  boundary: number;
  logprobs: (number | null)[];
}

/** One item through a server: both token counts, the echo of prompt + response, the boundary, the perplexity. */
export async function scoreItem(server: ScoringEndpoint, prompt: string, response: string): Promise<ScoredItem> {
  const promptTokens = await server.countTokens(prompt);
  const textTokens = await server.countTokens(prompt + response);
  const logprobs = await server.promptLogprobs(prompt + response);
  const { boundary } = responseBoundary(logprobs.length, promptTokens, textTokens);
  return { ppl: responsePerplexity(logprobs, boundary), boundary, logprobs };
}

/** One item of a paper-mode batch: its echoed logprobs and its boundary (both as from `responseBoundary`). */
export interface PaperItem {
  logprobs: (number | null)[];
  boundary: number;
}

export type PadSide = 'left' | 'right';

/** NLL of a label whose position the server cannot score: a pad, or a token predicted from a pad. */
export type PadTerm = (row: number, position: number) => number;

export interface PaperBatch {
  /** exp(mean NLL over the batch's labels), given to every item of the batch. */
  perplexity: number;
  /** Labels that entered the mean. */
  scored: number;
  /** Labels the paper's loss counts but no echo can score (see `paperBatchPerplexity`); left out. */
  unscored: number;
}

/**
 * The reference's batch-level loss, rebuilt from per-item echoes. It pads the batch to its longest sequence on
 * `padSide`, sets the labels of the first `boundary` positions of every row to "ignore" counting from position 0
 * whatever the padding side, keeps the pad positions' labels, and takes the mean next-token NLL over every label
 * left (a causal LM's loss: position t is predicted from positions < t, so position 0 never counts).
 *
 * A label on a real token predicted from real tokens is exactly the echoed logprob (causal attention and masked
 * pads leave it unchanged). A label on a pad, or on the first real token after left padding, is predicted from a
 * pad position; the reference masks pads out of attention there, which no completions API reproduces. Such a
 * label is scored with `padTerm` when given (the unit test passes the reference's own values) and otherwise
 * left out and counted in `unscored`.
 */
export function paperBatchPerplexity(items: PaperItem[], padSide: PadSide, padTerm?: PadTerm): PaperBatch {
  const width = Math.max(0, ...items.map((x) => x.logprobs.length));
  let sum = 0;
  let scored = 0;
  let unscored = 0;
  items.forEach((item, row) => {
    const n = item.logprobs.length;
    const pads = width - n;
    for (let t = Math.max(1, item.boundary); t < width; t++) {
      const real = padSide === 'right' ? t : t - pads; // index into the echo, or out of [0, n) for a pad
      const fromReal = real >= 1 && real < n; // the token and the one before it are both real
      const lp = fromReal ? item.logprobs[real] : undefined;
      if (lp !== undefined && lp !== null && Number.isFinite(lp)) {
        sum -= lp;
        scored++;
      } else if (padTerm && !fromReal) {
        sum += padTerm(row, t);
        scored++;
      } else unscored++;
    }
  });
  return { perplexity: scored ? Math.exp(sum / scored) : NaN, scored, unscored };
}

/** The reference's batches: consecutive runs of `size` items in row order (the last may be shorter). */
export function inBatches<T>(xs: T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < xs.length; i += size) out.push(xs.slice(i, i + size));
  return out;
}

export function meanIgnoringNaN(xs: number[]): number {
  const ok = xs.filter((x) => Number.isFinite(x));
  return ok.length ? ok.reduce((a, b) => a + b, 0) / ok.length : NaN;
}
