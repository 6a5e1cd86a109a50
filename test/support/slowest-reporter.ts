import Mocha from 'mocha';

const { EVENT_HOOK_END, EVENT_RUN_END, EVENT_TEST_FAIL, EVENT_TEST_PASS } = Mocha.Runner.constants;

/**
 * Mocha's spec reporter, then the slowest tests and hooks (a suite's `before all` may start servers) and the
 * slowest files, each with its time: where a tier's minutes go. POLYGLOT_SLOWEST: how many of each (default 15).
 * Use: `mocha --reporter lib/test/support/slowest-reporter.js …` (`npm run test:slowest`).
 */
class SlowestReporter extends Mocha.reporters.Spec {
  constructor(runner: Mocha.Runner, options?: Mocha.MochaOptions) {
    super(runner, options);
    const n = Number(process.env.POLYGLOT_SLOWEST ?? 15) || 15;
    const runs: { title: string; file: string; ms: number }[] = [];
    const note = (r: Mocha.Runnable): void => {
      if (r.duration !== undefined) runs.push({ title: r.fullTitle(), file: r.file ?? '(root hooks)', ms: r.duration });
    };
    runner.on(EVENT_TEST_PASS, note).on(EVENT_TEST_FAIL, note).on(EVENT_HOOK_END, note);
    runner.once(EVENT_RUN_END, () => {
      const secs = (ms: number): string => `${(ms / 1000).toFixed(2)} s`.padStart(9);
      const files = new Map<string, number>();
      for (const r of runs) files.set(r.file, (files.get(r.file) ?? 0) + r.ms);
      const out = [`\n  slowest ${n} tests and hooks:`];
      for (const r of [...runs].sort((a, b) => b.ms - a.ms).slice(0, n)) out.push(`  ${secs(r.ms)}  ${r.title}`);
      out.push(`\n  slowest ${n} files (tests and hooks summed):`);
      for (const [file, ms] of [...files].sort((a, b) => b[1] - a[1]).slice(0, n))
        out.push(`  ${secs(ms)}  ${file.replace(`${process.cwd()}/`, '')}`);
      console.log(out.join('\n'));
    });
  }
}

export = SlowestReporter;
