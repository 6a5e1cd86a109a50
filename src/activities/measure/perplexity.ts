import type { PerplexityOptions } from '../metrics';
import { ErrorType, isPolyglotError, PolyglotError } from '../../common/errors';
import {
  inBatches,
  meanIgnoringNaN,
  paperBatchPerplexity,
  scoreItem,
  type ScoredItem,
  type ScoringEndpoint,
} from '../../metrics/perplexity';
import type { perplexity } from '../../metrics/defs/perplexity';
import type { Computed, ComputeFn } from './context';

/** Perplexity of responses given prompts, per item checkpointed (src/metrics/defs/perplexity.ts). */
export const computePerplexity: ComputeFn<typeof perplexity> = async (ctx) => {
  const { input } = ctx;
  const opts: PerplexityOptions = input.perplexity ?? { mode: 'per-item', batchSize: 8, padSide: 'left' };
  const paper = opts.mode === 'paper';
  // The boundary now comes from the echo's own length (a leading BOS is detected, not assumed absent), so the
  // config says so: results of the earlier prompt-count boundary keep their own keys.
  const config = {
    model: input.model,
    provider: input.provider?.id,
    mode: opts.mode,
    boundary: 'echo-minus-tokenize',
    ...(paper ? { batchSize: opts.batchSize, padSide: opts.padSide } : {}),
  };
  return ctx.cached(config, async (parts) => {
    const { client, limiter, model } = ctx.endpoint();
    const signal = () => ctx.signal();
    const server: ScoringEndpoint = {
      countTokens: (text) =>
        limiter.run(
          () => client.countTokens(model, text, signal()),
          () => 0,
        ),
      promptLogprobs: async (text) =>
        (
          await limiter.run(
            () => client.promptLogprobs(model, text, signal()),
            () => 0,
          )
        ).logprobs,
    };
    const { rows, outcomes, repaired } = await ctx.perSubsampleItem(
      parts,
      async (r): Promise<{ ppl: number | null; boundary?: number; logprobs?: (number | null)[] }> => {
        let item: ScoredItem;
        try {
          item = await scoreItem(server, r.prompt, r.response);
        } catch (e) {
          if (isPolyglotError(e)) throw e;
          throw new PolyglotError(ErrorType.LlmBadResponse, `perplexity of item ${r.id}: ${(e as Error).message}`);
        }
        const { ppl, boundary, logprobs } = item;
        // Paper mode needs every echoed logprob later (left padding can expose prompt tokens to the loss).
        return { ppl: Number.isFinite(ppl) ? ppl : null, ...(paper ? { boundary, logprobs } : {}) };
      },
    );
    const perItem = rows.map((r) => outcomes.get(r.id)!.ppl ?? NaN);
    const values: Computed<typeof perplexity>['values'] = {
      average_perplexity: meanIgnoringNaN(perItem),
      average_perplexity_per_item: meanIgnoringNaN(perItem),
      perplexity_items: perItem.filter(Number.isFinite).length,
      perplexity_paper_mode: paper ? 1 : 0,
    };
    let paperValues: number[] | undefined;
    if (paper) {
      paperValues = [];
      let unscored = 0;
      for (const batch of inBatches(rows, opts.batchSize)) {
        const items = batch.map((r) => {
          const o = outcomes.get(r.id)!;
          if (!o.logprobs || o.boundary === undefined)
            throw new PolyglotError(ErrorType.CorruptArtifact, `perplexity part-file for ${r.id} lacks its logprobs`);
          return { logprobs: o.logprobs, boundary: o.boundary };
        });
        const b = paperBatchPerplexity(items, opts.padSide);
        unscored += b.unscored;
        paperValues.push(...batch.map(() => b.perplexity));
      }
      values.average_perplexity_paper = meanIgnoringNaN(paperValues);
      values.perplexity_paper_unscored_labels = unscored;
      values.average_perplexity = values.average_perplexity_paper;
    }
    return {
      values,
      detail: rows.map((r, i) => ({ id: r.id, ppl: perItem[i], ...(paperValues ? { paper: paperValues[i] } : {}) })),
      repaired,
    };
  });
};
