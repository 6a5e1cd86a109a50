import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection } from '@temporalio/worker';
import { codecFromEnv, ENCRYPTED_ENCODING, generateKey } from '../../src/common/codec';
import { startCodecServer } from '../../src/common/codec-server';
import { LocalJobRunner } from '../../src/jobs/local';
import { createWorkers } from '../../src/workers/options';
import { FAKE_JOB_COMMAND, storeFor, uniqueName } from '../support/fixtures';
import { killHard, processEnv, spawnTracked, until } from '../support/processes';
import { TOOLS, freePort, getStack } from '../support/stack';

/**
 * Payload encryption end to end, against a Temporal dev server of its own with the Web UI: a job
 * workflow runs with the codec on worker and client; the server (its gRPC API and the Web UI's HTTP
 * API) then holds ciphertext only. With the UI's codec endpoint enabled, the UI advertises the codec
 * server, and the codec server decrypts for the UI's origin exactly what the UI shows; disabled, the UI
 * shows the ciphertext and nothing else.
 */
describe('payload encryption with the Temporal Web UI', function () {
  this.timeout(180_000);
  const MARKER = 'zebra-cell-7f3a'; // in the workflow's input; must never reach the server in clear

  async function devServer(uiPort: number, codecEndpoint?: string): Promise<{ child: ChildProcess; address: string }> {
    const port = await freePort();
    const child = spawnTracked(
      path.join(TOOLS, 'temporal'),
      [
        'server',
        'start-dev',
        '--ip',
        '127.0.0.1',
        '--port',
        String(port),
        '--ui-port',
        String(uiPort),
        '--log-level',
        'error',
        ...(codecEndpoint ? ['--ui-codec-endpoint', codecEndpoint] : []),
      ],
      { stdio: 'ignore' },
    );
    await until(
      async () => (await fetch(`http://127.0.0.1:${uiPort}/api/v1/settings`).catch(() => undefined))?.ok === true,
      60_000,
      'Temporal dev server with its Web UI',
    );
    return { child, address: `127.0.0.1:${port}` };
  }

  /** Runs one job workflow through a worker and client that both encrypt; returns its ids. */
  async function runEncryptedJob(address: string, key: string) {
    const dataConverter = { payloadCodecs: [codecFromEnv({ POLYGLOT_CODEC_KEY: key })!] };
    const bucket = uniqueName('codec');
    await storeFor(bucket).ensureBucket();
    const taskQueue = uniqueName('tq');
    const connection = await NativeConnection.connect({ address });
    const { workers } = await createWorkers({
      env: {
        temporalAddress: address,
        temporalNamespace: 'default',
        s3Endpoint: getStack().s3Endpoint,
        s3Region: 'us-east-1',
        taskQueue,
      },
      providers: [],
      connection,
      dataConverter,
      deps: {
        runners: { local: new LocalJobRunner(mkdtempSync(path.join(tmpdir(), 'pg-codec-jobs-')), processEnv({})) },
      },
    });
    const client = new Client({ connection: await Connection.connect({ address }), dataConverter });
    const cellId = `sweep/${MARKER}/t=a/l=de/s=olmo/train`;
    const workflowId = uniqueName('codec-job');
    try {
      const result = await workers[0]!.runUntil(
        client.workflow.execute('jobWorkflow', {
          taskQueue,
          workflowId,
          args: [
            {
              runner: 'local',
              pollMs: 200,
              spec: {
                cellId,
                sweepId: 's',
                image: 'local',
                command: FAKE_JOB_COMMAND,
                outputUri: `s3://${bucket}/out/`,
              },
            },
          ],
        }),
      );
      assert.equal((result as { result: { status: string } }).result.status, 'succeeded', 'decoded by the client');
    } finally {
      await connection.close();
    }
    const raw = new Client({ connection: await Connection.connect({ address }) }); // no codec: what the server holds
    const history = await raw.workflow.getHandle(workflowId).fetchHistory();
    const runId = history.events![0]!.workflowExecutionStartedEventAttributes!.originalExecutionRunId!;
    return { workflowId, runId, history: JSON.stringify(history), rawEvents: history.events! };
  }

  function payloadsIn(json: unknown): { metadata?: Record<string, string>; data?: string }[] {
    const found: { metadata?: Record<string, string>; data?: string }[] = [];
    const walk = (v: unknown) => {
      if (Array.isArray(v)) v.forEach(walk);
      else if (v && typeof v === 'object') {
        const o = v as Record<string, unknown>;
        if (Array.isArray(o.payloads)) found.push(...(o.payloads as typeof found));
        Object.values(o).forEach(walk);
      }
    };
    walk(json);
    return found;
  }

  async function uiHistory(ui: string, workflowId: string, runId: string) {
    const url = `${ui}/api/v1/namespaces/default/workflows/${encodeURIComponent(workflowId)}/history?execution.runId=${runId}`;
    // The UI dials the server's gRPC port once at its own start, which can come before the server listens;
    // its client then backs off (503 "connection refused") for a while before it dials again.
    let r = await fetch(url);
    for (const deadline = Date.now() + 60_000; r.status === 503 && Date.now() < deadline; r = await fetch(url))
      await new Promise((res) => setTimeout(res, 500));
    assert.equal(r.status, 200, `the Web UI serves the history: ${await r.clone().text()}`);
    return (await r.json()) as unknown;
  }

  const uiPortsUsed = new Set<number>();
  for (const enabled of [true, false]) {
    it(`Web UI codec endpoint ${enabled ? 'enabled: the UI decodes through the codec server' : 'disabled: the UI shows ciphertext only'}`, async () => {
      const key = generateKey();
      const codec = codecFromEnv({ POLYGLOT_CODEC_KEY: key })!;
      // A fresh UI port per server: the dev server's UI keeps its settings per UI port, so a port reused from
      // the previous test's (stopped) server can send this UI to that server's gone gRPC address.
      let uiPort = await freePort();
      while (uiPortsUsed.has(uiPort)) uiPort = await freePort();
      uiPortsUsed.add(uiPort);
      const uiOrigin = `http://127.0.0.1:${uiPort}`;
      const codecServer = enabled
        ? await startCodecServer({ codec, corsOrigins: [uiOrigin], namespaces: ['default'] })
        : undefined;
      const server = await devServer(uiPort, codecServer?.url);
      try {
        const settings = (await (await fetch(`${uiOrigin}/api/v1/settings`)).json()) as {
          Codec?: { Endpoint?: string };
        };
        assert.equal(
          settings.Codec?.Endpoint ?? '',
          enabled ? codecServer!.url : '',
          'the UI advertises the codec endpoint',
        );

        const { workflowId, runId, history, rawEvents } = await runEncryptedJob(server.address, key);
        // The server holds ciphertext only: every payload of every event is encrypted, and no payload's bytes
        // hold the clear text (checked on the bytes: a JSON dump of the history would hide them either way).
        const rawPayloads = payloadsIn(rawEvents) as unknown as {
          metadata?: Record<string, Uint8Array>;
          data?: Uint8Array;
        }[];
        assert.ok(
          rawPayloads.length >= 4,
          `inputs and results of the workflow and its activity: ${rawPayloads.length}`,
        );
        for (const p of rawPayloads) {
          assert.equal(Buffer.from(p.metadata!.encoding!).toString(), ENCRYPTED_ENCODING);
          assert.ok(!Buffer.from(p.data!).toString('latin1').includes(MARKER), 'no clear text in the stored bytes');
        }
        assert.ok(!history.includes(MARKER));

        // The Web UI's own API: base64 payloads, each encrypted, none decoding to the clear text.
        const shown = await uiHistory(uiOrigin, workflowId, runId);
        const payloads = payloadsIn(shown);
        assert.ok(payloads.length >= 4);
        for (const p of payloads) {
          assert.equal(Buffer.from(p.metadata!.encoding!, 'base64').toString(), ENCRYPTED_ENCODING);
          assert.ok(!Buffer.from(p.data!, 'base64').toString('latin1').includes(MARKER), 'the UI gets no clear text');
        }

        if (codecServer) {
          // What the browser does: a CORS preflight from the UI's origin, then POST /decode.
          const pre = await fetch(`${codecServer.url}/decode`, {
            method: 'OPTIONS',
            headers: {
              Origin: uiOrigin,
              'Access-Control-Request-Method': 'POST',
              'Access-Control-Request-Headers': 'content-type,x-namespace',
            },
          });
          assert.equal(pre.status, 204);
          assert.equal(pre.headers.get('access-control-allow-origin'), uiOrigin);
          const dec = await fetch(`${codecServer.url}/decode`, {
            method: 'POST',
            headers: { Origin: uiOrigin, 'Content-Type': 'application/json', 'X-Namespace': 'default' },
            body: JSON.stringify({ payloads }),
          });
          assert.equal(dec.status, 200);
          const decoded = (await dec.json()) as { payloads: { metadata: Record<string, string>; data: string }[] };
          const clear = decoded.payloads.map((p) => Buffer.from(p.data, 'base64').toString('utf8')).join('\n');
          assert.ok(clear.includes(MARKER), 'the decoded workflow input is the clear text');
          for (const p of decoded.payloads) {
            assert.notEqual(Buffer.from(p.metadata.encoding!, 'base64').toString(), ENCRYPTED_ENCODING);
          }
          // Another origin, or another namespace, gets nothing.
          const evil = await fetch(`${codecServer.url}/decode`, {
            method: 'POST',
            headers: { Origin: 'http://evil.example', 'Content-Type': 'application/json' },
            body: JSON.stringify({ payloads }),
          });
          assert.equal(evil.status, 403);
          const otherNs = await fetch(`${codecServer.url}/decode`, {
            method: 'POST',
            headers: { Origin: uiOrigin, 'Content-Type': 'application/json', 'X-Namespace': 'other' },
            body: JSON.stringify({ payloads }),
          });
          assert.equal(otherNs.status, 403);
        }
      } finally {
        codecServer?.server.close();
        await killHard(server.child);
      }
    });
  }
});
