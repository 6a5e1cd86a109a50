import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Client } from '@temporalio/client';
import { codecFromEnv, generateKey } from '../common/codec';
import { startCodecServer } from '../common/codec-server';
import { readEnv } from '../common/env';
import { isPolyglotError } from '../common/errors';
import { formatLeaderboard, wantsColor } from '../report/terminal';
import type { CohortScores } from '../scoring/types';
import { importSeedPool, readSeedFile } from '../seeds/pool';
import { deriveSweepId, specVersion } from '../spec/plan';
import { sweepWorkflowId } from '../common/workflow-ids';
import { InvalidSpecError, parseSweepSpec } from '../spec/sweep';
import { StoreRegistry, makeS3Client } from '../storage/s3';
import { pauseSignal, resumeSignal } from '../workflows/shared';
import { DEV_ENV_FILE, devDown, devPorts, devRestart, devStatus, devUp, loadDevEnv } from './devstack';
import { enforceSpecPolicy } from './policy';
import { readStoredScores, verifySweepReport, writeSweepReport } from './report';
import { SCORE_HELP, renderScoreTable, scoreFromFile } from './score';
import { loadSpec } from './spec-file';
import {
  cliMessage,
  estimate,
  explainPlan,
  missingPollers,
  renderGrid,
  specOfSweep,
  startSweep,
  sweepProgress,
  temporalClient,
} from './sweep';

const USAGE = `polyglot — durable Polyglot Teachers sweeps on Temporal

usage:
  polyglot dev up [component…]             start the local stack (all, or the components named; idempotent):
                                           codec, temporal (+Web UI), s3, llm, embed, worker
  polyglot dev restart <component…>        restart components (e.g. worker after a rebuild); old logs kept
  polyglot dev status                      is each component running and answering as this stack's?
  polyglot dev down                        stop the local stack (its data under .data/ stays)
  polyglot seeds import <file> --bucket B [--prefix P]
                                           import a JSONL/Parquet seed pool; prints its s3:// URI
  polyglot sweep plan <spec.yaml>          grid, cache hit/miss per cell and why, estimates
  polyglot sweep start <spec.yaml> [--wait] [--new-run]
                                           start the sweep, or attach to it when it runs this spec;
                                           another spec under a used sweepId needs --new-run (a new
                                           version; the old one's spec, summary and report are kept)
  polyglot sweep status <sweepId> [--watch] [--run <runId>]
                                           teacher × language grid with per-cell progress
  polyglot sweep resume <sweepId> [--spec <spec.yaml>] [--wait]
                                           re-run a stopped or finished sweep under the same id;
                                           finished work is skipped
  polyglot sweep pause|unpause <sweepId>   pause between shards / continue
  polyglot sweep cancel <sweepId>          cancel the sweep and all its cells
  polyglot report <sweepId> [--out <dir>] [--run <version>]
                                           score the sweep (its latest version, or the one named)
                                           and write the leaderboard + HTML report
  polyglot report <sweepId> --verify [--run <version>]
                                           check the stored report against its integrity.json
  polyglot score --from <results.json|csv> [--anchors <anchors.csv>] [--alpha 0.5]
                [--small-gap-threshold 0.02] [--primary-family F] [--out <dir>]
                                           PG-Score of a results table (e.g. the paper's);
                                           \`polyglot score --help\` lists its columns
  polyglot codec keygen                    a new payload-encryption key (for POLYGLOT_CODEC_KEY)
  polyglot codec serve [--port 8888] [--cors-origin <Web UI origin>]… [--namespace N]…
                                           the Web UI's codec endpoint: decrypts payloads for display

environment: TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, S3_ENDPOINT, AWS_REGION, AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY (defaults come from .data/dev.env after \`polyglot dev up\`); POLYGLOT_CODEC_KEY
and POLYGLOT_CODEC_OLD_KEYS turn on payload encryption (docs/operations.md, "Payload encryption").`;

function flag(args: string[], name: string): string | undefined {
  const i = args.indexOf(name);
  if (i < 0) return undefined;
  const v = args[i + 1];
  if (v === undefined || v.startsWith('--')) throw new UsageError(`${name} needs a value`);
  args.splice(i, 2);
  return v;
}
function numberFlag(args: string[], name: string): number | undefined {
  const v = flag(args, name);
  if (v === undefined) return undefined;
  if (!/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(v)) throw new UsageError(`${name} needs a number, got "${v}"`);
  return Number(v);
}
function bool(args: string[], name: string): boolean {
  const i = args.indexOf(name);
  if (i >= 0) args.splice(i, 1);
  return i >= 0;
}
class UsageError extends Error {
  /** The help printed after the message: the command's own when it has one. */
  constructor(
    message: string,
    readonly help: string = USAGE,
  ) {
    super(message);
  }
}

function stores(): StoreRegistry {
  const env = readEnv();
  return new StoreRegistry(makeS3Client(env.s3Endpoint, env.s3Region));
}

function need(arg: string | undefined, what: string): string {
  if (!arg) throw new UsageError(`missing ${what}`);
  return arg;
}

async function waitAndReport(sweepId: string): Promise<number> {
  const client = await temporalClient();
  const handle = client.workflow.getHandle(sweepWorkflowId(sweepId));
  let last = '';
  const timer = setInterval(() => {
    void sweepProgress(client, sweepId)
      .then(({ progress }) => {
        if (!progress) return;
        // Where each cell is (generating, training its students, measuring, done), counted by status.
        const counts = new Map<string, number>();
        for (const c of progress.cells) counts.set(c.status, (counts.get(c.status) ?? 0) + 1);
        const cells = [...counts].map(([status, n]) => `${n} ${status}`).join(', ');
        const line = `  ${progress.totals.examples} examples; cells: ${cells}; stage ${progress.stage}`;
        if (line !== last) console.log(line);
        last = line;
      })
      .catch(() => undefined);
  }, 5000);
  try {
    await handle.result();
  } catch {
    // reported below from the final status
  } finally {
    clearInterval(timer);
  }
  const status = await printSweepView(client, sweepId);
  return status === 'COMPLETED' ? 0 : 1;
}

/**
 * What `sweep status` and `--wait` print: the run, its teacher × language grid and, once scored, the
 * leaderboard read from the stored report, then where the report's files are. Returns the run's status.
 */
async function printSweepView(client: Client, sweepId: string, runId?: string): Promise<string> {
  const color = wantsColor(process.stdout, process.env);
  const { status, runId: run, progress, failure } = await sweepProgress(client, sweepId, runId);
  const spec = await specOfSweep(client, sweepId, run).catch(() => undefined);
  const version = spec ? specVersion(spec) : undefined;
  console.log(`sweep ${sweepId}: ${status} (run ${run}, version ${version ?? 'unknown (its spec does not validate)'})`);
  let stored: { scores?: CohortScores; problem?: string; location?: string } | undefined;
  if (spec && (progress?.report || (status === 'COMPLETED' && spec.metrics)))
    stored = await readStoredScores(stores().for(spec.storage.bucket), spec.storage, sweepId, version).catch(
      (e: unknown) => ({
        problem: `cannot read the stored report: ${cliMessage(e)}`,
      }),
    );
  if (progress) console.log(renderGrid(progress, { scores: stored?.scores, color }));
  if (stored?.scores) console.log(['', ...formatLeaderboard(stored.scores, { color })].join('\n'));
  if (stored?.problem) console.log(`leaderboard: ${stored.problem}`);
  if (stored?.location)
    console.log(`\nfull report (leaderboard.md, report.html, CSV, scores.json): ${stored.location}`);
  if (failure) console.log(failure);
  return status;
}

async function run(argv: string[]): Promise<number> {
  const args = argv.slice();
  const [group, cmd] = [args.shift(), args.shift()];
  if (!group || group === '--help' || group === 'help') {
    console.log(USAGE);
    return 0;
  }
  if (group !== 'dev') loadDevEnv();
  if (group === 'dev') {
    if (cmd === 'up') {
      console.log('starting the local stack on 127.0.0.1 …');
      const ports = await devUp(args);
      console.log(`Temporal Web UI: http://127.0.0.1:${ports.ui}   (settings in ${DEV_ENV_FILE})`);
      return 0;
    }
    if (cmd === 'down') {
      await devDown();
      return 0;
    }
    if (cmd === 'restart') {
      await devRestart(args);
      return 0;
    }
    if (cmd === 'status') {
      const { ports, components } = await devStatus();
      for (const s of components)
        console.log(
          `  ${s.name.padEnd(8)} ${s.ok ? 'up  ' : 'DOWN'} ${s.pid ? `pid ${s.pid} ` : ''}${s.where}${s.problem ? `: ${s.problem}` : ''}`,
        );
      console.log(`Web UI: http://127.0.0.1:${ports.ui}`);
      return components.every((s) => s.ok) ? 0 : 1;
    }
    throw new UsageError(`unknown dev command "${cmd ?? ''}"; use up, restart, status or down`);
  }
  if (group === 'seeds') {
    if (cmd !== 'import') throw new UsageError(`unknown seeds command "${cmd ?? ''}"; use import`);
    const bucket = need(flag(args, '--bucket'), '--bucket');
    const prefix = flag(args, '--prefix') ?? 'polyglot';
    const file = need(args[0], 'seed file');
    const rows = await readSeedFile(file, await readFile(file));
    const store = stores().for(bucket);
    await store.ensureBucket();
    const { uri, manifest, created } = await importSeedPool(store, prefix, rows, file);
    console.log(`${created ? 'imported' : 'already present'}: ${manifest.rows} rows → ${uri}`);
    for (const [k, n] of Object.entries(manifest.counts).sort()) console.log(`  ${k.padEnd(16)} ${n}`);
    return 0;
  }
  if (group === 'codec') {
    if (cmd === 'keygen') {
      console.log(generateKey());
      return 0;
    }
    if (cmd !== 'serve') throw new UsageError(`unknown codec command "${cmd ?? ''}"; use keygen or serve`);
    const codec = codecFromEnv();
    if (!codec) throw new UsageError('POLYGLOT_CODEC_KEY is not set: the codec server decrypts with that key');
    const port = Number(flag(args, '--port') ?? 8888);
    const origins: string[] = [];
    const namespaces: string[] = [];
    for (let o = flag(args, '--cors-origin'); o; o = flag(args, '--cors-origin')) origins.push(o);
    for (let n = flag(args, '--namespace'); n; n = flag(args, '--namespace')) namespaces.push(n);
    if (!origins.length) origins.push(`http://127.0.0.1:${devPorts().ui}`, `http://localhost:${devPorts().ui}`);
    const { url } = await startCodecServer({ codec, port, corsOrigins: origins, namespaces });
    console.log(`codec endpoint: ${url}   (Web UI origins: ${origins.join(', ')})`);
    await new Promise(() => undefined); // serve until killed
  }
  if (group === 'score') {
    const rest = [cmd ?? '', ...args].filter(Boolean);
    if (rest.includes('--help') || rest.includes('-h')) {
      console.log(SCORE_HELP);
      return 0;
    }
    const from = need(flag(rest, '--from'), '--from <results file>');
    const opts = {
      anchorsFile: flag(rest, '--anchors'),
      alpha: numberFlag(rest, '--alpha'),
      smallGapThreshold: numberFlag(rest, '--small-gap-threshold'),
      primaryFamily: flag(rest, '--primary-family'),
      out: flag(rest, '--out'),
    };
    if (rest.length) {
      throw new UsageError(`polyglot score: unknown argument(s) ${rest.map((a) => `"${a}"`).join(' ')}`, SCORE_HELP);
    }
    console.log(renderScoreTable(await scoreFromFile(from, opts)));
    return 0;
  }
  if (group === 'report') {
    const rest = args;
    const sweepId = need(cmd, 'sweep id');
    const out = flag(rest, '--out') ?? path.join('reports', sweepId);
    const version = flag(rest, '--run');
    const client = await temporalClient();
    const spec = await specOfSweep(client, sweepId);
    if (bool(rest, '--verify')) {
      // Nothing written: the stored report's files against the sizes and digests its integrity.json holds.
      const { prefix, problems } = await verifySweepReport(stores().for(spec.storage.bucket), spec, sweepId, version);
      for (const p of problems) console.error(`damaged: ${p}`);
      console.log(
        problems.length ? `report at ${prefix}: ${problems.length} problem(s)` : `report at ${prefix}: intact`,
      );
      return problems.length ? 2 : 0;
    }
    const written = await writeSweepReport(stores().for(spec.storage.bucket), spec, sweepId, out, version);
    // The leaderboard as a table; the Markdown (with its links) is in the files.
    console.log(formatLeaderboard(written.scores, { color: wantsColor(process.stdout, process.env) }).join('\n'));
    console.log(
      `\nreport: ${path.resolve(written.files.find((f) => f.endsWith('.html'))!)}\nalso in S3: ${written.s3Prefix}`,
    );
    return 0;
  }
  if (group === 'sweep') {
    const wait = bool(args, '--wait');
    const watch = bool(args, '--watch');
    const specOverride = flag(args, '--spec');
    const newRun = bool(args, '--new-run');
    const run = flag(args, '--run');
    const target = need(args[0], cmd === 'plan' || cmd === 'start' ? 'spec file' : 'sweep id');
    switch (cmd) {
      case 'plan': {
        const spec = await loadSpec(target, stores(), { importSeeds: false });
        await enforceSpecPolicy(spec);
        const { plan, verdicts, warnings } = await explainPlan(spec, stores());
        console.log(
          `sweep ${plan.sweepId} (workflow ${plan.workflowId}): ${plan.cells.length} cells, ${plan.totalShards} shards, ${plan.totalRequested} examples requested`,
        );
        for (const v of verdicts) {
          const strat = v.cell.strategies.map((s) => `${s.strategy}×${s.count}`).join(' ');
          console.log(
            `  ${v.hit ? 'HIT ' : 'MISS'} ${v.cell.teacherId} / ${v.cell.language}  [${strat}]  key ${v.cell.datasetKey}  (${v.requests} requests to make)`,
          );
          for (const w of v.why) console.log(`         ${w}`);
        }
        for (const w of warnings) console.log(`  warning: ${w}`);
        const est = estimate(spec, verdicts);
        console.log(
          `to compute: ${est.requests} requests, ≈ ${est.maxTokens} tokens, ≈ $${est.maxCostUsd.toFixed(2)} (completions at maxTokens; prompts estimated at ~600 tokens)`,
        );
        return 0;
      }
      case 'start': {
        // The trust policy first, on the spec as validated without uploads: a refused spec writes nothing.
        await enforceSpecPolicy(await loadSpec(target, stores(), { importSeeds: false }));
        const spec = await loadSpec(target, stores(), { importSeeds: true });
        const client = await temporalClient();
        const missing = await missingPollers(client, spec);
        if (missing.length)
          console.log(
            `warning: no worker polls ${missing.join(', ')}; the sweep waits until one does (POLYGLOT_PROVIDERS on the worker)`,
          );
        const r = await startSweep(client, spec, { newRun, stores: stores() });
        const sweepId = deriveSweepId(spec);
        if (r.kind === 'finished') {
          console.log(
            `sweep ${sweepId} already ran this spec (${r.status}, workflow ${r.workflowId}, run ${r.runId}); nothing started.\n` +
              `  see it: polyglot sweep status ${sweepId}   and   polyglot report ${sweepId}\n` +
              `  run it again (finished work is reused): polyglot sweep resume ${sweepId}`,
          );
          return r.status === 'COMPLETED' ? 0 : 1;
        }
        console.log(
          `${r.kind === 'attached' ? 'already running with this spec; attached to' : 'started:'} sweep ${sweepId} (workflow ${r.workflowId}, run ${r.runId})`,
        );
        return wait ? waitAndReport(sweepId) : 0;
      }
      case 'status': {
        const client = await temporalClient();
        for (;;) {
          const status = await printSweepView(client, target, run);
          if (!watch || status !== 'RUNNING') return 0;
          await new Promise((r) => setTimeout(r, 5000));
        }
      }
      case 'resume': {
        const client = await temporalClient();
        const spec = specOverride
          ? await loadSpec(specOverride, stores(), { importSeeds: true })
          : await specOfSweep(client, target);
        // A resume continues this sweep id or nothing: never a second workflow under another id.
        if (deriveSweepId(spec) !== target)
          throw new UsageError(
            `the spec names sweep ${deriveSweepId(spec)}, not ${target}; resume continues one sweep id: set sweepId: ${target} in the spec, or start the other sweep with \`polyglot sweep start\``,
          );
        // A recorded spec is the workflow's raw input: parse it (defaults filled in) like the workflow does.
        await enforceSpecPolicy(parseSweepSpec(spec));
        const r = await startSweep(client, spec, { resume: true, newRun, stores: stores() });
        console.log(
          r.kind === 'attached'
            ? `sweep ${target} is still running; nothing to resume`
            : `resumed: sweep ${target} (run ${r.runId}); finished cells and shards are reused`,
        );
        return wait ? waitAndReport(target) : 0;
      }
      case 'pause':
      case 'unpause': {
        const client = await temporalClient();
        const h = client.workflow.getHandle(sweepWorkflowId(target));
        if (cmd === 'pause') await h.signal(pauseSignal, 'paused from the CLI');
        else await h.signal(resumeSignal, {});
        console.log(`${cmd}d sweep ${target}`);
        return 0;
      }
      case 'cancel': {
        const client = await temporalClient();
        await client.workflow.getHandle(sweepWorkflowId(target)).cancel();
        console.log(`cancel requested for sweep ${target}; its cells are cancelled too`);
        return 0;
      }
      default:
        throw new UsageError(`unknown sweep command "${cmd ?? ''}"`);
    }
  }
  throw new UsageError(`unknown command "${group}"`);
}

run(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: unknown) => {
    if (e instanceof UsageError) console.error(`error: ${e.message}\n\n${e.help}`);
    else if (e instanceof InvalidSpecError) console.error(e.message);
    else if (isPolyglotError(e)) console.error(`error: ${e.message}`);
    else console.error(`error: ${cliMessage(e)}`);
    process.exit(2);
  },
);
