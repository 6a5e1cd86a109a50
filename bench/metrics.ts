/**
 * Metrics benchmark: the two intrinsic metrics that run inside the worker process rather than on a model
 * server. (1) distinct-RI on random 384-d vectors streamed in batches, as embeddings arrive from
 * /v1/embeddings; (2) fastText language ID (fasttext.wasm.js, lid.176) on short template sentences in the
 * six languages of docs/method.md, "Languages". Prints seconds and peak memory per phase: the largest
 * process.memoryUsage().rss sampled after every batch, and the kernel's VmHWM, reset before each phase
 * through /proc/self/clear_refs where the kernel allows it. Target: each phase under 5 s on 2 cores.
 * Usage:
 *   node lib/bench/metrics.js [--vectors 10000] [--dim 384] [--batch 256] [--texts 10000]
 */
import { readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { DistinctAccumulator } from '../src/metrics/diversity';
import { detectLanguage } from '../src/metrics/language';
import { rng } from '../src/common/random';

function arg(name: string, dflt: number): number {
  const i = process.argv.indexOf(name);
  return i >= 0 ? Number(process.argv[i + 1]) : dflt;
}

const mb = (bytes: number) => bytes / (1 << 20);

/** VmHWM (peak resident set) in MiB, from the kernel. */
function vmHwmMb(): number {
  const status = readFileSync('/proc/self/status', 'utf8');
  return Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1] ?? NaN) / 1024;
}

/** Reset VmHWM to the current RSS (Linux ≥ 4.0: write 5 to clear_refs); false where not allowed. */
function resetHwm(): boolean {
  try {
    writeFileSync('/proc/self/clear_refs', '5');
    return true;
  } catch {
    return false;
  }
}

class Phase {
  private peakRss = 0;
  private readonly t0: number;
  private readonly rss0: number;
  readonly hwmReset: boolean;

  constructor(readonly name: string) {
    global.gc?.();
    this.hwmReset = resetHwm();
    this.rss0 = process.memoryUsage().rss;
    this.peakRss = this.rss0;
    this.t0 = performance.now();
  }

  sample(): void {
    const rss = process.memoryUsage().rss;
    if (rss > this.peakRss) this.peakRss = rss;
  }

  end(extra: string): void {
    const seconds = (performance.now() - this.t0) / 1000;
    this.sample();
    const hwm = `${vmHwmMb().toFixed(1)} MiB${this.hwmReset ? '' : ' (process lifetime: clear_refs not allowed)'}`;
    console.log(
      `${this.name}: ${seconds.toFixed(3)} s; rss at start ${mb(this.rss0).toFixed(1)} MiB, ` +
        `peak sampled rss ${mb(this.peakRss).toFixed(1)} MiB, VmHWM ${hwm}; ${extra}`,
    );
  }
}

/** Standard normal from a uniform stream (Box–Muller). */
function gaussian(next: () => number): number {
  return Math.sqrt(-2 * Math.log(1 - next())) * Math.cos(2 * Math.PI * next());
}

function benchDistinct(n: number, dim: number, batch: number): void {
  const next = rng('bench-distinct');
  const phase = new Phase(`distinct-RI ${n} × ${dim}-d, batches of ${batch}`);
  const acc = new DistinctAccumulator();
  let addMs = 0;
  for (let i = 0; i < n; i += batch) {
    // A batch as the embeddings client returns it: plain number arrays.
    const vectors: number[][] = [];
    for (let j = i; j < Math.min(n, i + batch); j++) vectors.push(Array.from({ length: dim }, () => gaussian(next)));
    const t = performance.now();
    acc.add(vectors);
    addMs += performance.now() - t;
    phase.sample();
  }
  const value = acc.value();
  phase.end(
    `accumulate only ${(addMs / 1000).toFixed(3)} s (${Math.round(n / (addMs / 1000))} vectors/s), ` +
      `distinct-RI ${value.toFixed(6)} (≈ 1 for independent Gaussian vectors)`,
  );
}

/** Six languages × (subject, predicate, time) templates; Japanese puts the verb last. */
const TEMPLATES: Record<
  string,
  { s: string[]; p: string[]; t: string[]; join: (s: string, p: string, t: string) => string }
> = {
  ar: {
    s: ['الطالب', 'المعلم', 'الطفل', 'أخي', 'جارنا'],
    p: ['يقرأ كتابا جديدا', 'يشرب القهوة', 'يذهب إلى المدرسة', 'يكتب رسالة طويلة', 'يلعب في الحديقة'],
    t: ['كل صباح', 'اليوم', 'في المساء', 'يوم الجمعة'],
    join: (s, p, t) => `${s} ${p} ${t}.`,
  },
  cs: {
    s: ['Můj bratr', 'Učitel', 'Ta holka', 'Náš soused', 'Student'],
    p: ['čte novou knihu', 'pije kávu', 'jde do školy', 'píše dlouhý dopis', 'si hraje na zahradě'],
    t: ['každé ráno', 'dnes', 'večer', 'v pátek'],
    join: (s, p, t) => `${s} ${p} ${t}.`,
  },
  de: {
    s: ['Mein Bruder', 'Der Lehrer', 'Das Mädchen', 'Unser Nachbar', 'Die Studentin'],
    p: [
      'liest ein neues Buch',
      'trinkt einen Kaffee',
      'geht in die Schule',
      'schreibt einen langen Brief',
      'spielt im Garten',
    ],
    t: ['jeden Morgen', 'heute', 'am Abend', 'am Freitag'],
    join: (s, p, t) => `${s} ${p} ${t}.`,
  },
  es: {
    s: ['Mi hermano', 'El profesor', 'La niña', 'Nuestro vecino', 'La estudiante'],
    p: ['lee un libro nuevo', 'bebe un café', 'va a la escuela', 'escribe una carta larga', 'juega en el jardín'],
    t: ['cada mañana', 'hoy', 'por la noche', 'el viernes'],
    join: (s, p, t) => `${s} ${p} ${t}.`,
  },
  id: {
    s: ['Kakak saya', 'Guru itu', 'Anak perempuan itu', 'Tetangga kami', 'Mahasiswa itu'],
    p: ['membaca buku baru', 'minum kopi', 'pergi ke sekolah', 'menulis surat panjang', 'bermain di kebun'],
    t: ['setiap pagi', 'hari ini', 'pada malam hari', 'pada hari Jumat'],
    join: (s, p, t) => `${s} ${p} ${t}.`,
  },
  ja: {
    s: ['私の兄は', '先生は', 'その女の子は', '隣の人は', '学生は'],
    p: ['新しい本を読みます', 'コーヒーを飲みます', '学校に行きます', '長い手紙を書きます', '庭で遊びます'],
    t: ['毎朝', '今日', '夜に', '金曜日に'],
    join: (s, p, t) => `${s}${t}${p}。`,
  },
};

/** fastText's label for Indonesian is sometimes Malay, which language.ts accepts as well. */
const ACCEPT: Record<string, string[]> = { id: ['id', 'ms'] };

async function benchLanguageId(n: number): Promise<void> {
  const langs = Object.keys(TEMPLATES);
  const next = rng('bench-lid');
  const pick = (xs: string[]) => xs[Math.floor(next() * xs.length)]!;
  const texts = Array.from({ length: n }, (_, i) => {
    const lang = langs[i % langs.length]!;
    const t = TEMPLATES[lang]!;
    return { lang, text: t.join(pick(t.s), pick(t.p), pick(t.t)) };
  });

  const load = new Phase('language ID model load (fasttext.wasm.js lid.176)');
  await detectLanguage('warm up');
  load.end('first call');

  const phase = new Phase(`language ID ${n} texts in ${langs.length} languages`);
  const hits = new Map<string, number>(langs.map((l) => [l, 0]));
  for (let i = 0; i < texts.length; i++) {
    const { lang, text } = texts[i]!;
    const got = await detectLanguage(text);
    if ((ACCEPT[lang] ?? [lang]).includes(got)) hits.set(lang, hits.get(lang)! + 1);
    if (i % 256 === 0) phase.sample();
  }
  const perLang = langs.map((l) => `${l} ${((100 * hits.get(l)!) / (n / langs.length)).toFixed(1)}%`).join(', ');
  phase.end(`correct: ${perLang}`);
}

async function main(): Promise<void> {
  const vectors = arg('--vectors', 10_000);
  const dim = arg('--dim', 384);
  const batch = arg('--batch', 256);
  const texts = arg('--texts', 10_000);
  console.log(`node ${process.version}, ${os.cpus().length} CPUs, load average ${os.loadavg()[0]!.toFixed(2)}`);
  benchDistinct(vectors, dim, batch);
  await benchLanguageId(texts);
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
