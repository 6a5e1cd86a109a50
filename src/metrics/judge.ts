import { languageName } from '../spec/languages';
import type { ChatRequest } from '../llm/client';

/**
 * Rubric judgement (docs/method.md, "Rubric judge"), M-Prometheus-style absolute grading in
 * Polyglot's own words. Unparseable output scores 1, as in the reference, and is counted.
 */
export const RUBRIC_VERSION = 'rubric-v2';

const LEVELS = [
  '1: severe grammar errors, culturally inappropriate, or unhelpful or harmful; very weak overall.',
  '2: clear errors, little cultural awareness; addresses the task only in part.',
  '3: adequate, with minor errors and reasonable cultural awareness; helpful but could be better.',
  '4: strong, few errors, good sense of nuance; helpful and harmless with little left to improve.',
  '5: excellent grammar, apt and idiomatic nuance; fully helpful and harmless.',
];

export function judgeRequest(
  model: string,
  language: string,
  prompt: string,
  response: string,
  maxTokens: number,
): ChatRequest {
  const lang = languageName(language);
  const content = [
    `You grade a response to an instruction written in ${lang}. Write feedback that judges the response strictly against the rubric below, not by overall impression. Then give an integer score from 1 to 5 that matches the rubric. Output only the feedback and the score, with no opening or closing remarks.`,
    '',
    '### Instruction',
    prompt,
    '',
    '### Response',
    response,
    '',
    '### Rubric',
    `Is the response proficient in ${lang} (grammar, cultural nuance), and does it follow the instruction helpfully and harmlessly?`,
    ...LEVELS,
    '',
    '### Feedback',
  ].join('\n');
  return {
    model,
    messages: [{ role: 'user', content }],
    temperature: 0,
    max_tokens: maxTokens,
    response_format: {
      type: 'json_schema',
      json_schema: {
        name: 'Judgement',
        schema: {
          type: 'object',
          properties: { feedback: { type: 'string' }, score: { type: 'integer', enum: [1, 2, 3, 4, 5] } },
          required: ['feedback', 'score'],
          additionalProperties: false,
        },
      },
    },
  };
}

/** The last match of a global regex's first group as a number, or undefined. */
function lastScore(re: RegExp, text: string): number | undefined {
  let last: string | undefined;
  for (const m of text.matchAll(re)) last = m[1];
  return last === undefined ? undefined : Number(last);
}

/**
 * The score 1–5, or undefined when the output cannot be parsed (the caller scores it 1 and counts it).
 * Structured JSON first (a Markdown code fence around it is ignored); then Prometheus's `[RESULT] n`
 * marker; JSON-shaped output that does not parse (typically cut off by max_tokens) only by its own
 * `"score"` key, never by a number its feedback text mentions; other free text by its last `Score: n`,
 * since the verdict comes after the feedback.
 */
export function parseJudgement(content: string): number | undefined {
  const text = content
    .trim()
    .replace(/^```(?:json)?\s*/i, '')
    .replace(/\s*```$/, '');
  try {
    const v = JSON.parse(text) as { score?: unknown };
    const s = v?.score;
    if (typeof s === 'number' && Number.isInteger(s) && s >= 1 && s <= 5) return s;
  } catch {
    // fall through to the textual forms
  }
  const result = lastScore(/\[RESULT\]\s*([1-5])\b/g, text);
  if (result !== undefined) return result;
  if (text.startsWith('{')) return lastScore(/"score"\s*:\s*"?([1-5])\b/g, text);
  return lastScore(/(?:score|Score|SCORE)\D{0,12}([1-5])\b/g, text);
}
