import { sha256Hex } from '../common/hash';
import { storedTemplateDigestOf } from '../storage/layout';

/**
 * Generation prompt templates, versioned. The wording is Polyglot's own, carrying the instructions
 * described in docs/method.md, "Generation strategies". A template change must come with a new version:
 * the version and a
 * hash of the template text are part of every dataset's cache key and recorded on every row.
 */

export type TemplateVersion = 'v1' | 'v2';

export interface Example {
  prompt: string;
  response: string;
}

const SYSTEM = (lang: string) =>
  `You are an expert in ${lang} and you read and write it fluently, like an educated native speaker. ` +
  `Everything you write must be coherent and culturally appropriate for ${lang} speakers, and must show a real command of the nuances of ${lang}.`;

const NO_CHATTER =
  'Write nothing else: no greeting, no request for clarification, no apology, no comment about the task.';

const CATEGORIES = [
  'logical reasoning or finding the error in an argument',
  'a math or quantitative problem with an explained solution',
  'classification or labelling',
  'a dialogue or role-play',
  'translation or paraphrase under constraints',
  'a step-by-step procedure',
  'grammar correction or linguistic analysis',
  'a short creative piece of at most 50 words',
  'recalling knowledge and verifying or correcting it',
  'a cultural or pragmatic judgement',
];

/** Both generate templates end alike: the seed examples, then the cue for the new one. */
function examplesBlock(examples: Example[]): string[] {
  return ['', 'Examples:', '', renderExamples(examples), '', 'New example:'];
}

function generateV1(lang: string, examples: Example[]): string {
  return [
    `You generate multilingual training data. Create ONE new prompt/response pair for a dataset that shows how an AI assistant carries out general instructions in ${lang}.`,
    `The prompt must state a task that is very hard but solvable. The response must carry out the task correctly and completely — if it does not, you have failed — and must not add detail the task does not ask for.`,
    `The new pair must differ from the examples below, and be diverse, detailed, precise, comprehensive and of high quality. Keep it relevant and culturally appropriate for ${lang} speakers.`,
    `Return only a JSON object with the keys "prompt" and "response", both written in ${lang}. ${NO_CHATTER}`,
    ...examplesBlock(examples),
  ].join('\n');
}

function generateV2(lang: string, examples: Example[]): string {
  return [
    `You generate multilingual training data. Create ONE new prompt/response pair for a dataset that shows how an AI assistant carries out general instructions and answers questions in ${lang}.`,
    `The prompt must state a task, or ask a what/where/when/how/who/why question, that is very hard but solvable. The response must carry out the task or answer the question correctly and completely — if it does not, you have failed — and must not add detail the task does not ask for.`,
    `Hard rule: the task must belong to exactly one of these categories; choose one yourself at random and never name it in the output:`,
    ...CATEGORIES.map((c, i) => `  ${i + 1}. ${c}`),
    `Vary the kind of task, the style and tone of the response, and how complex the language is.`,
    `Learn the patterns and structure of the examples below rather than copying them: the new pair must differ from them yet stay related, and be diverse, detailed, precise, comprehensive and of high quality. Keep it relevant and culturally appropriate for ${lang} speakers.`,
    `Return only a JSON object with the keys "prompt" and "response", both written in ${lang}. ${NO_CHATTER}`,
    ...examplesBlock(examples),
  ].join('\n');
}

function translate(lang: string, englishPrompt: string): string {
  return [
    `You generate multilingual training data. Translate the English prompt below into ${lang}, then write a fitting response to it in ${lang}.`,
    `Return both the translated prompt and the response. Both must be coherent, culturally appropriate and attentive to the nuances of ${lang}.`,
    `Never return the English original: translate first, then return the translation.`,
    `Return only a JSON object with the keys "prompt" (the ${lang} translation) and "response" (in ${lang}). ${NO_CHATTER}`,
    '',
    `English prompt: ${englishPrompt}`,
  ].join('\n');
}

function respond(lang: string, request: string): string {
  return [
    `You generate multilingual training data. Below is a user's request in ${lang}. Write a fitting response in ${lang}.`,
    `The response must be coherent, culturally appropriate and attentive to the nuances of ${lang}. ${NO_CHATTER}`,
    '',
    `Request: ${request}`,
  ].join('\n');
}

export function renderExamples(examples: Example[]): string {
  return examples.map((e) => `Prompt: ${e.prompt}\nResponse: ${e.response}`).join('\n\n');
}

export const TEMPLATES = {
  v1: { system: SYSTEM, generate: generateV1, translate, respond },
  v2: { system: SYSTEM, generate: generateV2, translate, respond },
} as const;

/** JSON schema of the structured output for generate and translate (guided decoding). */
export function sftExampleSchema(lang: string, translated: boolean): Record<string, unknown> {
  return {
    type: 'object',
    properties: {
      prompt: {
        type: 'string',
        description: translated ? `The prompt translated into ${lang} (not English)` : `The new prompt, in ${lang}`,
      },
      response: { type: 'string', description: `The response, in ${lang}` },
    },
    required: ['prompt', 'response'],
    additionalProperties: false,
  };
}

/** Hash of each version's full text, rendered on fixed probe inputs; recorded in keys and rows. */
export const TEMPLATE_HASHES: Record<TemplateVersion, string> = (() => {
  const probe: Example[] = [{ prompt: 'P', response: 'R' }];
  const hashOf = (v: TemplateVersion) => {
    const t = TEMPLATES[v];
    return sha256Hex(
      [t.system('L'), t.generate('L', probe), t.translate('L', 'E'), t.respond('L', 'Q')].join('\u0000'),
    ).slice(0, 16);
  };
  return { v1: hashOf('v1'), v2: hashOf('v2') };
})();

// ---- a spec's own prompt files --------------------------------------------------------------------

/** The parts of the wording a spec may replace with its own file (`templates.<part>` in the spec). */
export const TEMPLATE_PARTS = ['system', 'generate', 'translate', 'respond'] as const;
export type TemplatePart = (typeof TEMPLATE_PARTS)[number];
export type TemplateFiles = Partial<Record<TemplatePart, string>>;

/**
 * Placeholders a file may use, and those it must use: a generate file without `{{examples}}` would never show the
 * teacher its in-context examples; a translate or respond file without `{{prompt}}` would never show the seed.
 */
const PLACEHOLDERS: Record<TemplatePart, { required: string[]; allowed: string[] }> = {
  system: { required: [], allowed: ['language'] },
  generate: { required: ['examples'], allowed: ['language', 'examples'] },
  translate: { required: ['prompt'], allowed: ['language', 'prompt'] },
  respond: { required: ['prompt'], allowed: ['language', 'prompt'] },
};

const PLACEHOLDER = /\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}/g;

/** Why a file cannot serve as this part's template (empty when it can). */
export function templateProblems(part: TemplatePart, text: string): string[] {
  const { required, allowed } = PLACEHOLDERS[part];
  const used = new Set([...text.matchAll(PLACEHOLDER)].map((m) => m[1]!));
  const problems: string[] = [];
  if (!text.trim()) problems.push('the file is empty');
  const missing = required.filter((p) => !used.has(p));
  if (missing.length)
    problems.push(
      `it lacks ${missing.map((p) => `{{${p}}}`).join(', ')}; a ${part} template must place ${missing.length > 1 ? 'them' : 'it'} where the ${part === 'generate' ? 'in-context examples' : 'seed prompt'} go`,
    );
  const unknown = [...used].filter((p) => !allowed.includes(p));
  if (unknown.length)
    problems.push(
      `unknown placeholder(s) ${unknown.map((p) => `{{${p}}}`).join(', ')}; a ${part} template may use ${allowed.map((p) => `{{${p}}}`).join(', ')}`,
    );
  return problems;
}

/** Fill the placeholders in one pass: text put in (a seed prompt, examples) is never scanned for placeholders. */
export function renderTemplate(text: string, values: Record<string, string>): string {
  return text.replace(PLACEHOLDER, (whole, name: string) => values[name] ?? whole);
}

/**
 * The template hash of a sweep: the built-in version's hash, or, with files of its own, a hash of that and each
 * file's SHA-256 — so a change of wording changes every dataset key and is recorded on every row.
 */
export function templateHashOf(version: TemplateVersion, files: TemplateFiles | undefined): string {
  const digests = Object.fromEntries(
    TEMPLATE_PARTS.filter((p) => files?.[p]).map((p) => [p, storedTemplateDigestOf(files![p]!) ?? files![p]!]),
  );
  if (!Object.keys(digests).length) return TEMPLATE_HASHES[version];
  return sha256Hex(JSON.stringify({ base: TEMPLATE_HASHES[version], files: digests })).slice(0, 16);
}
