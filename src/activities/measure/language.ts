import { conformance, duplicateRate } from '../../metrics/language';
import type { language } from '../../metrics/defs/language';
import type { ComputeFn } from './context';

/** fastText conformance and duplicate rate, local (src/metrics/defs/language.ts). */
export const computeLanguage: ComputeFn<typeof language> = async (ctx) => {
  const { input } = ctx;
  return ctx.cached({ detector: 'fasttext-lid.176', target: input.language }, async () => {
    const rows = await ctx.subsampleRows();
    return {
      values: {
        prompts_language_conformance: await conformance(
          rows.map((r) => r.prompt),
          input.language,
        ),
        responses_language_conformance: await conformance(
          rows.map((r) => r.response),
          input.language,
        ),
        duplicate_rate: duplicateRate(rows),
      },
    };
  });
};
