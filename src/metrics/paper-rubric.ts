/**
 * The study's rubric for the judge (docs/method.md, "Rubric judge"): one criterion naming the target
 * language and five level descriptions, verbatim as the study graded with them. This is data, a
 * parameter of the measurement like the prompt itself: a word changed here changes every score, so it
 * is kept exactly and hashed into the judge's cache key through the request it renders.
 *
 * `criteria` is a Python-format template with one field, `{language}`, filled with the language's
 * English name (e.g. "Japanese"), as the study filled it.
 */
export const PAPER_RUBRIC = {
  criteria:
    'Is the model proficient in language {language}, including its cultural nuance and grammatical usage, and responds in a helpful and harmless manner according to the instruction?',
  score1_description:
    'The response contains severe grammatical errors, lacks cultural appropriateness, or is unhelpful/harmful. The language proficiency is very poor.',
  score2_description:
    'The response has noticeable grammatical errors and limited cultural awareness. It partially addresses the instruction but with significant gaps in language proficiency or helpfulness.',
  score3_description:
    'The response demonstrates adequate language proficiency with some minor grammatical errors. It shows reasonable cultural awareness and addresses the instruction in a helpful manner, though improvements are possible.',
  score4_description:
    'The response exhibits strong language proficiency with minimal grammatical errors and good cultural nuance. It addresses the instruction in a helpful and harmless way with only minor room for improvement.',
  score5_description:
    'The response demonstrates excellent language proficiency with proper grammar, appropriate cultural nuance, and idiomatic usage. It fully addresses the instruction in a helpful and harmless manner.',
} as const;
