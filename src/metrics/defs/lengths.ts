import { defineMetric, MetricModel } from '../definition';

/** Tokenizer (`/tokenize`) for prompt and response lengths. */
export const lengths = defineMetric({
  specKey: 'tokenizer',
  name: 'lengths',
  activity: 'measureLengths',
  queue: 'provider',
  schema: MetricModel,
  outputs: [
    { name: 'prompts_average_length', record: 'core', doc: 'Mean prompt length in tokens.' },
    { name: 'responses_average_length', record: 'core', doc: 'Mean response length in tokens.' },
  ],
});
