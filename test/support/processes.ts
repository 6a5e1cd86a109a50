import type { ChildProcess } from 'node:child_process';
import path from 'node:path';
import { spawnTracked, stopProcess } from './registry';
import { ROOT, TOOLS, getStack } from './stack';

export { spawnTracked, stopProcess, track, leftoverProcesses, TEST_RUN_VAR } from './registry';

/** Environment for a separate worker or CLI process pointed at the test stack. */
export function processEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const stack = getStack();
  return {
    ...process.env,
    TEMPORAL_ADDRESS: stack.temporalAddress,
    TEMPORAL_NAMESPACE: 'default',
    S3_ENDPOINT: stack.s3Endpoint,
    AWS_ACCESS_KEY_ID: 'test',
    AWS_SECRET_ACCESS_KEY: 'test',
    AWS_REGION: 'us-east-1',
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
    ...extra,
  };
}

/** Start the real worker entry point as its own process, resolving once it polls. */
export function spawnWorker(extra: Record<string, string>): Promise<ChildProcess> {
  const child = spawnTracked(
    process.execPath,
    [path.join(ROOT, 'lib/src/workers/main.js')],
    { env: processEnv(extra), stdio: ['ignore', 'pipe', 'pipe'] },
    'worker',
  );
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => {
      // A worker that never came up is not left behind to poll a server that goes away.
      void stopProcess(child);
      reject(new Error(`worker did not start:\n${out}`));
    }, 60_000);
    const onData = (d: Buffer) => {
      out += d.toString();
      if (out.includes('polyglot worker up')) {
        clearTimeout(timer);
        resolve(child);
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`worker exited with ${code}:\n${out}`));
    });
  });
}

/** SIGKILL a child and its process group (for children spawned through `spawnTracked`). */
export function killHard(child: ChildProcess): Promise<void> {
  return stopProcess(child, 'SIGKILL');
}

/** Run a command to completion; resolves with its exit code and output. */
export function runCommand(
  cmd: string,
  args: string[],
  env: NodeJS.ProcessEnv,
): Promise<{ code: number; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawnTracked(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'], cwd: ROOT });
    let out = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    child.once('error', reject);
    child.once('exit', (code) => {
      // Anything it forked and left in its group goes with it.
      void stopProcess(child);
      resolve({ code: code ?? -1, out });
    });
  });
}

export async function until(cond: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * `temporal workflow start` of the stock Temporal CLI against the test server, with the spec as the one JSON
 * input: exactly what a Web UI start sends, with no Polyglot code on the client side.
 */
export async function temporalCliStart(opts: { workflowId: string; taskQueue: string; input: unknown }): Promise<void> {
  const res = await runCommand(
    path.join(TOOLS, 'temporal'),
    ['workflow', 'start', '--address', getStack().temporalAddress, '--namespace', 'default',
      '--type', 'sweepWorkflow', '--task-queue', opts.taskQueue, '--workflow-id', opts.workflowId,
      '--input', JSON.stringify(opts.input)], // prettier-ignore
    process.env,
  );
  if (res.code !== 0) throw new Error(`temporal workflow start exited ${res.code}:\n${res.out}`);
}
