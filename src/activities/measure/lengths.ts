import type { lengths } from '../../metrics/defs/lengths';
import type { ComputeFn } from './context';

/** Mean prompt and response lengths in the endpoint's tokens, per item checkpointed (src/metrics/defs/lengths.ts). */
export const computeLengths: ComputeFn<typeof lengths> = async (ctx) => {
  const { input } = ctx;
  return ctx.cached({ model: input.model, provider: input.provider?.id }, async (parts) => {
    const { client, limiter, model } = ctx.endpoint();
    const signal = () => ctx.signal();
    const count = (text: string) =>
      limiter.run(
        () => client.countTokens(model, text, signal()),
        () => 0,
      );
    const { rows, outcomes, repaired } = await ctx.perSubsampleItem(parts, async (r) => ({
      p: await count(r.prompt),
      r: await count(r.response),
    }));
    const all = rows.map((r) => outcomes.get(r.id)!);
    return {
      values: {
        prompts_average_length: all.reduce((a, x) => a + x.p, 0) / Math.max(1, all.length),
        responses_average_length: all.reduce((a, x) => a + x.r, 0) / Math.max(1, all.length),
      },
      repaired,
    };
  });
};
