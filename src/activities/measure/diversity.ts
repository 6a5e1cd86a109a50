import { DistinctAccumulator } from '../../metrics/diversity';
import type { diversity } from '../../metrics/defs/diversity';
import type { ComputeFn } from './context';

/** Distinct-RI of prompts and responses, embedded in batches of 32 (src/metrics/defs/diversity.ts). */
export const computeDiversity: ComputeFn<typeof diversity> = async (ctx) => {
  const { input } = ctx;
  return ctx.cached({ model: input.model, provider: input.provider?.id }, async () => {
    const { client, limiter, model } = ctx.endpoint();
    const rows = await ctx.subsampleRows();
    const prompts = new DistinctAccumulator();
    const responses = new DistinctAccumulator();
    const embed = (texts: string[]) =>
      limiter.run(
        () => client.embed(model, texts, ctx.signal()),
        () => 0,
      );
    const batch = 32;
    for (let i = 0; i < rows.length; i += batch) {
      const part = rows.slice(i, i + batch);
      const [p, r] = await Promise.all([embed(part.map((x) => x.prompt)), embed(part.map((x) => x.response))]);
      prompts.add(p);
      responses.add(r);
      ctx.heartbeat({ done: i + part.length, total: rows.length });
    }
    return {
      values: { prompts_distinct_ri: prompts.value(), responses_distinct_ri: responses.value(), n: rows.length },
    };
  });
};
