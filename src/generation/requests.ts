import type { ChatRequest, ChatResult } from '../llm/client';
import { parseSftJson } from '../llm/client';
import type { SeedRow } from '../seeds/pool';
import { sha256Hex } from '../common/hash';
import { languageName } from '../common/languages';
import { sampleIndices } from '../common/random';
import type { Strategy, Teacher } from '../spec/sweep';
import {
  TEMPLATES,
  TEMPLATE_HASHES,
  renderExamples,
  renderTemplate,
  sftExampleSchema,
  type TemplatePart,
  type TemplateVersion,
} from '../spec/templates';

/** What one generation call needs to know, beyond the seed row itself. */
export interface GenerationContext {
  datasetKey: string;
  strategy: Strategy;
  language: string;
  teacher: Teacher;
  templateVersion: TemplateVersion;
  /** The spec's own wording for some parts (file texts, already checked); the rest is the version's. */
  customTemplates?: Partial<Record<TemplatePart, string>>;
  /** Recorded on every row: the version's hash, or the hash over the spec's own files (`templateHashOf`). */
  templateHash?: string;
  seed: number;
  /** The strategy's whole selection, for in-context examples (generate). */
  selection: SeedRow[];
}

/** One synthetic SFT row (docs/method.md, "Seed rows and synthetic rows"), plus provenance. */
export interface SyntheticRow {
  id: string;
  seed_id: string;
  source: string;
  source_id: string;
  language: string;
  seed_language: string;
  strategy: Strategy;
  model: string;
  teacher_model: string;
  synth_prompt: string;
  prompt: string;
  response: string;
  messages: { role: 'user' | 'assistant'; content: string }[];
  prompt_input: string;
  response_input: string;
  template_version: string;
  template_hash: string;
  finish_reason: string;
}

export const IN_CONTEXT_EXAMPLES = 3;

export function exampleId(datasetKey: string, strategy: string, seedId: string): string {
  return `ex-${sha256Hex(`${datasetKey}|${strategy}|${seedId}`).slice(0, 24)}`;
}

/** In-context examples for a generate row: seeded by (run seed, row id), never the row itself. */
export function inContextExamples(ctx: GenerationContext, row: SeedRow): SeedRow[] {
  const self = ctx.selection.findIndex((r) => r.id === row.id);
  const picks = sampleIndices(
    ctx.selection.length,
    IN_CONTEXT_EXAMPLES,
    `${ctx.seed}|${row.id}`,
    self < 0 ? undefined : self,
  );
  return picks.map((i) => ctx.selection[i]!);
}

export function buildChatRequest(ctx: GenerationContext, row: SeedRow): { request: ChatRequest; synthPrompt: string } {
  const lang = languageName(ctx.language);
  const t = TEMPLATES[ctx.templateVersion];
  const own = ctx.customTemplates ?? {};
  const fill = (part: TemplatePart, values: Record<string, string>) =>
    renderTemplate(own[part]!, { language: lang, ...values });
  let synthPrompt: string;
  let schema: Record<string, unknown> | undefined;
  switch (ctx.strategy) {
    case 'generate': {
      const examples = inContextExamples(ctx, row);
      synthPrompt = own.generate
        ? fill('generate', { examples: renderExamples(examples) })
        : t.generate(lang, examples);
      schema = sftExampleSchema(lang, false);
      break;
    }
    case 'translate':
      synthPrompt = own.translate ? fill('translate', { prompt: row.prompt }) : t.translate(lang, row.prompt);
      schema = sftExampleSchema(lang, true);
      break;
    case 'respond':
      synthPrompt = own.respond ? fill('respond', { prompt: row.prompt }) : t.respond(lang, row.prompt);
      break;
  }
  const system = own.system ? fill('system', {}) : t.system(lang);
  const request: ChatRequest = {
    model: ctx.teacher.model,
    messages: [
      { role: 'system', content: system },
      { role: 'user', content: synthPrompt },
    ],
    temperature: ctx.teacher.sampling.temperature,
    top_p: ctx.teacher.sampling.topP,
    max_tokens: ctx.teacher.sampling.maxTokens,
    // A per-row seed makes a repeated call reproducible where the server honours it.
    seed: parseInt(sha256Hex(`${ctx.seed}|${row.id}|${ctx.strategy}`).slice(0, 8), 16) & 0x7fffffff,
    ...(schema
      ? { response_format: { type: 'json_schema' as const, json_schema: { name: 'SFTExample', schema, strict: true } } }
      : {}),
  };
  return { request, synthPrompt };
}

export type Outcome = { ok: true; row: SyntheticRow } | { ok: false; reason: 'unparseable' | 'empty' };

/** Turn a model answer into a row, or into a counted failure (never an exception: paper §3 "nulls"). */
export function interpretResult(
  ctx: GenerationContext,
  row: SeedRow,
  synthPrompt: string,
  result: ChatResult,
): Outcome {
  let prompt: string;
  let response: string;
  if (ctx.strategy === 'respond') {
    if (!result.content.trim()) return { ok: false, reason: 'empty' };
    prompt = row.prompt;
    response = result.content.trim();
  } else {
    if (!result.content.trim()) return { ok: false, reason: 'empty' };
    const parsed = parseSftJson(result.content);
    if (!parsed) return { ok: false, reason: 'unparseable' };
    ({ prompt, response } = parsed);
  }
  return {
    ok: true,
    row: {
      id: exampleId(ctx.datasetKey, ctx.strategy, row.id),
      seed_id: row.id,
      source: row.source,
      source_id: row.source_id,
      language: ctx.language,
      seed_language: row.language,
      strategy: ctx.strategy,
      model: ctx.teacher.id,
      teacher_model: ctx.teacher.model,
      synth_prompt: synthPrompt,
      prompt,
      response,
      messages: [
        { role: 'user', content: prompt },
        { role: 'assistant', content: response },
      ],
      prompt_input: row.prompt,
      response_input: row.response,
      template_version: ctx.templateVersion,
      template_hash: ctx.templateHash ?? TEMPLATE_HASHES[ctx.templateVersion],
      finish_reason: result.finishReason,
    },
  };
}

/** Seeds a strategy may use for a target language (paper §3 "Seed selection per job"). */
export function eligibleSeeds(pool: SeedRow[], strategy: Strategy, language: string): SeedRow[] {
  return pool.filter(
    (r) => r.strategy.includes(strategy) && (strategy === 'translate' ? r.language === 'en' : r.language === language),
  );
}
