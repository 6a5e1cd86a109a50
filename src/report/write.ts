/** Writes a rendered report into a directory; each file goes to a temp name first, then is renamed. */
import { randomBytes } from 'node:crypto';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { RenderedReport } from './render';

/** Writes `text` to `file` atomically: a reader sees the old file or the whole new one, never half of it. */
export async function writeFileAtomic(file: string, text: string): Promise<void> {
  const tmp = path.join(
    path.dirname(file),
    `.${path.basename(file)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`,
  );
  try {
    await writeFile(tmp, text, 'utf8');
    await rename(tmp, file);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}

/**
 * Writes `leaderboard.md`, `report.html`, the CSV files present in `out.csv` (`cells.csv`, `teachers.csv`,
 * `intrinsic.csv` when intrinsic rows were given) and `scores.json` into `dir`. Returns the paths written.
 */
export async function writeReportFiles(dir: string, out: RenderedReport): Promise<string[]> {
  await mkdir(dir, { recursive: true });
  const files: [string, string][] = [
    ['leaderboard.md', out.markdown],
    ['report.html', out.html],
    ...Object.entries(out.csv).map(([name, text]): [string, string] => [path.basename(name), text]),
    ['scores.json', out.json],
  ];
  const written: string[] = [];
  for (const [name, text] of files) {
    const file = path.join(dir, name);
    await writeFileAtomic(file, text);
    written.push(file);
  }
  return written;
}
