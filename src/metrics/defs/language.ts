import { z } from 'zod';
import { defineMetric } from '../definition';

/** fastText language-ID conformance and duplicate rate (local, no endpoint). Default true. */
export const language = defineMetric({
  specKey: 'languageId',
  name: 'language',
  activity: 'measureLanguage',
  queue: 'main',
  schema: z.boolean().default(true),
  enabled: (on) => on,
  outputs: [
    {
      name: 'prompts_language_conformance',
      record: 'extra',
      doc: 'Share of prompts fastText lid.176 detects as the target language.',
    },
    {
      name: 'responses_language_conformance',
      record: 'extra',
      doc: 'Share of responses fastText lid.176 detects as the target language.',
    },
    { name: 'duplicate_rate', record: 'extra', doc: 'Share of rows repeating an earlier (prompt, response) pair.' },
  ],
});
