import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

/** Debian's `chromium` (scripts/install-chromium.sh), or undefined when it is not installed. */
export function findChromium(): string | undefined {
  for (const name of ['chromium', 'chromium-browser']) {
    const r = spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' });
    if (r.status === 0 && r.stdout.trim()) return r.stdout.trim();
  }
  return undefined;
}

/** The DOM of an HTML file after headless Chromium has loaded and laid it out. */
export function dumpDom(chromium: string, file: string, profileDir: string): string {
  const r = spawnSync(
    chromium,
    [
      '--headless=new',
      '--no-sandbox',
      '--disable-gpu',
      `--user-data-dir=${path.join(profileDir, 'profile')}`,
      '--dump-dom',
      pathToFileURL(file).href,
    ],
    { encoding: 'utf8', timeout: 60_000, maxBuffer: 64 * 1024 * 1024 },
  );
  if (r.error || r.status !== 0)
    throw new Error(`chromium exited ${r.status}: ${String(r.error ?? r.stderr).slice(-2000)}`);
  return r.stdout;
}

/** Each <svg> chart of a DOM, with its size and how many shapes it drew. */
export function chartsOf(dom: string): { width: number; height: number; shapes: number }[] {
  return [...dom.matchAll(/<svg\b([^>]*)>([\s\S]*?)<\/svg>/g)].map(([, attrs = '', body = '']) => ({
    width: Number(/\swidth="([\d.]+)"/.exec(attrs)?.[1] ?? 0),
    height: Number(/\sheight="([\d.]+)"/.exec(attrs)?.[1] ?? 0),
    shapes: (body.match(/<(rect|path|circle|line)\b/g) ?? []).length,
  }));
}
