import { prometheusTexts } from '../../common/protocols';
import {
  judgeOutcome,
  judgeRequest,
  judgeSettings,
  LEGACY_JUDGE,
  readVerdict,
  type JudgeOutcome,
} from '../../metrics/judge';
import type { judge } from '../../metrics/defs/judge';
import type { ComputeFn } from './context';

/** One judged item as its part-file stores it. */
interface JudgedItem {
  score: number | null;
  /** Absent in part-files written before outcomes were recorded. */
  outcome?: JudgeOutcome;
  finishReason?: string;
  /** The answer's first 2,000 characters. */
  feedback: string;
  /** Its last 200 characters, where it is longer. */
  tail?: string;
}

/** The rubric judge, per item checkpointed (src/metrics/defs/judge.ts; docs/method.md, "Rubric judge"). */
export const computeJudge: ComputeFn<typeof judge> = async (ctx) => {
  const { input } = ctx;
  const maxTokens = input.maxTokens ?? LEGACY_JUDGE.maxTokens;
  const template = input.judgeTemplate ?? LEGACY_JUDGE.template;
  // Read before anything else: a worker without the rendered texts fails at once, naming the fix.
  const texts = template === 'rubric-v2' ? undefined : prometheusTexts(ctx.env);
  return ctx.cached(
    // rubric-v2's settings are what they were before versions, so its stored results stay found.
    { model: input.model, provider: input.provider?.id, ...judgeSettings(template, texts), maxTokens },
    async (parts) => {
      const { client, limiter, model } = ctx.endpoint();
      const { rows, outcomes, repaired } = await ctx.perSubsampleItem(parts, async (r): Promise<JudgedItem> => {
        const req = judgeRequest(
          template,
          { model, language: input.language, prompt: r.prompt, response: r.response, maxTokens },
          texts,
        );
        const res = await limiter.run(
          () => client.chat(req, ctx.signal()),
          (x) => x.promptTokens + x.completionTokens,
        );
        const score = readVerdict(template, res.content);
        return {
          score: score ?? null,
          outcome: judgeOutcome(score, res.finishReason),
          finishReason: res.finishReason,
          feedback: res.content.slice(0, 2000),
          // The verdict ends the answer: a long answer keeps its end too, so the score can be checked.
          ...(res.content.length > 2000 ? { tail: res.content.slice(-200) } : {}),
        };
      });
      const items = rows.map((r) => outcomes.get(r.id)!);
      const scores = items.map((o) => o.score);
      const parsed = scores.filter((s): s is number => s !== null);
      // Part-files written before outcomes were recorded hold a score only: unread counts as unparsed.
      const count = (k: JudgeOutcome) =>
        items.filter((o) => (o.outcome ?? (o.score === null ? 'unparsed' : 'scored')) === k).length;
      return {
        values: {
          // Faithful: unreadable judgements score 1, whether cut by the length limit or not.
          average_rubric_score: scores.reduce<number>((a, s) => a + (s ?? 1), 0) / Math.max(1, scores.length),
          rubric_mean_parsed_only: parsed.length ? parsed.reduce((a, b) => a + b, 0) / parsed.length : NaN,
          rubric_parse_failures: scores.length - parsed.length,
          rubric_truncated: count('truncated'),
          rubric_unparsed: count('unparsed'),
        },
        detail: rows.map((r) => ({ id: r.id, ...outcomes.get(r.id)! })),
        repaired,
      };
    },
  );
};
