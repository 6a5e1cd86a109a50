import { defineMetric, MetricModel } from '../definition';

/** Distinct-RI of prompts and responses over `/v1/embeddings` vectors (docs/method.md, "Intrinsic metrics"). */
export const diversity = defineMetric({
  specKey: 'embeddings',
  name: 'diversity',
  activity: 'measureDiversity',
  queue: 'provider',
  /** `/v1/embeddings` model for distinct-RI of prompts and responses. */
  schema: MetricModel,
  outputs: [
    { name: 'prompts_distinct_ri', record: 'core', doc: 'Distinct-RI of the prompts (paper §5).' },
    { name: 'responses_distinct_ri', record: 'core', doc: 'Distinct-RI of the responses (paper §5).' },
    { name: 'n', doc: 'Rows embedded.' },
  ],
});
