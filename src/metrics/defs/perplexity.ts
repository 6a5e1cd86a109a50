import { z } from 'zod';
import { defineMetric, MetricModel } from '../definition';

/**
 * Scoring LM for perplexity (`/v1/completions` with echo + logprobs, `/tokenize`). `mode`: `per-item` (default,
 * each item's own response NLL) or `paper` (the reference's batch-level loss over `batchSize` rows in subsample
 * order, padded on `padSide`; docs/method.md, "Perplexity"). `padSide` is the scoring tokenizer's: the paper's
 * Gemma tokenizer pads left.
 */
export const perplexity = defineMetric({
  specKey: 'perplexity',
  name: 'perplexity',
  activity: 'measurePerplexity',
  queue: 'provider',
  schema: MetricModel.extend({
    mode: z.enum(['per-item', 'paper']).default('per-item'),
    batchSize: z.int().min(1).max(1024).default(8),
    padSide: z.enum(['left', 'right']).default('left'),
  }),
  activityInput: ({ mode, batchSize, padSide }) => ({ perplexity: { mode, batchSize, padSide } }),
  outputs: [
    {
      name: 'average_perplexity',
      record: 'core',
      doc: "Mean perplexity of responses given prompts, in the metric's mode (per-item by default, or the paper's batch mode).",
    },
    { name: 'average_perplexity_per_item', doc: 'Mean of the per-item perplexities, in either mode.' },
    { name: 'perplexity_items', doc: 'Items with a finite perplexity.' },
    { name: 'perplexity_paper_mode', doc: '1 in paper mode, else 0.' },
    { name: 'average_perplexity_paper', doc: "Paper mode: mean of the batches' perplexities." },
    {
      name: 'perplexity_paper_unscored_labels',
      doc: 'Paper mode: labels predicted from a pad position, which no completions API scores (left out).',
    },
  ],
});
