/**
 * Per-item perplexity of a response given its prompt (docs/method.md, "Perplexity": the corrected per-item form):
 * exp of the mean negative log-likelihood over the response tokens only. The prompt/response boundary
 * comes from tokenizing the prompt on its own (as the reference does); `promptTokens` is that count.
 * Echoed log-probabilities have `null` for the first token (nothing precedes it).
 */
export function responsePerplexity(logprobs: (number | null)[], promptTokens: number): number {
  const resp = logprobs.slice(promptTokens).filter((x): x is number => x !== null && Number.isFinite(x));
  if (!resp.length) return NaN;
  const nll = -resp.reduce((a, b) => a + b, 0) / resp.length;
  return Math.exp(nll);
}

export function meanIgnoringNaN(xs: number[]): number {
  const ok = xs.filter((x) => Number.isFinite(x));
  return ok.length ? ok.reduce((a, b) => a + b, 0) / ok.length : NaN;
}
