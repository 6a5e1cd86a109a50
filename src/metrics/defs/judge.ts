import { z } from 'zod';
import { DEFAULT_JUDGE_TEMPLATE, JUDGE_TEMPLATES, PAPER_JUDGE_MAX_TOKENS } from '../judge';
import { defineMetric, MetricModel } from '../definition';

/**
 * Judge model for the 1–5 rubric score (docs/method.md, "Rubric judge"). `template`: the prompt and verdict
 * format, `prometheus-absolute-v1` (the study's: Prometheus absolute grading, `[RESULT] n`) or `rubric-v2`
 * (Polyglot's earlier wording, JSON answer). `maxTokens`: the answer budget, the study's 2,048.
 */
export const judge = defineMetric({
  specKey: 'judge',
  name: 'judge',
  activity: 'measureJudge',
  queue: 'provider',
  schema: MetricModel.extend({
    template: z.enum(JUDGE_TEMPLATES).default(DEFAULT_JUDGE_TEMPLATE),
    maxTokens: z.int().min(16).max(8192).default(PAPER_JUDGE_MAX_TOKENS),
  }),
  // `template` is absent only in a run begun before it existed: the activity then keeps that run's template.
  activityInput: (c) => ({ maxTokens: c.maxTokens, judgeTemplate: c.template }),
  outputs: [
    {
      name: 'average_rubric_score',
      record: 'core',
      doc: 'Mean judge score 1–5 with unparseable judgements scored 1 (faithful).',
    },
    {
      name: 'rubric_parse_failures',
      record: 'extra',
      doc: 'Judge answers without a readable verdict (scored 1): `rubric_truncated` + `rubric_unparsed`.',
    },
    {
      name: 'rubric_truncated',
      record: 'extra',
      doc: 'Of those, answers cut by the length limit (`finish_reason: length`) before a verdict.',
    },
    { name: 'rubric_unparsed', record: 'extra', doc: 'Of those, complete answers whose verdict could not be read.' },
    { name: 'rubric_mean_parsed_only', record: 'extra', doc: 'Mean score over the readable verdicts only.' },
  ],
});
