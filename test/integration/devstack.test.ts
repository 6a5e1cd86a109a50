import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { runCommand, until } from '../support/processes';
import { ROOT, freePort } from '../support/stack';

/**
 * `polyglot dev up|restart|status|down` on a stack of the test's own (POLYGLOT_DEV_DATA, free ports):
 * Temporal, rclone's S3 and a worker — the components whose restarts and identities matter; the LLM
 * servers would only add minutes of model loading.
 */
describe('local dev stack (polyglot dev)', function () {
  this.timeout(240_000);
  const dir = mkdtempSync(path.join(tmpdir(), 'devstack-'));
  let ports: Record<string, string>;
  const file = (...p: string[]) => path.join(dir, ...p);
  const pidOf = (name: string) => Number(readFileSync(file('run', `${name}.pid`), 'utf8'));
  const record = () => readFileSync(file('dev.env'), 'utf8');
  const secret = () => /^AWS_SECRET_ACCESS_KEY=(.+)$/m.exec(record())![1]!;

  function dev(args: string[], extra: Record<string, string> = {}) {
    const env: NodeJS.ProcessEnv = { ...process.env, POLYGLOT_DEV_DATA: dir, ...extra };
    // The shell's stack settings must not leak in from the test run (its own Temporal and S3).
    for (const k of [
      'TEMPORAL_ADDRESS',
      'S3_ENDPOINT',
      'AWS_ACCESS_KEY_ID',
      'AWS_SECRET_ACCESS_KEY',
      'POLYGLOT_CODEC_KEY',
    ])
      if (!(k in extra)) delete env[k];
    return runCommand(path.join(ROOT, 'bin/polyglot'), ['dev', ...args], env);
  }

  /** Processes this stack started (they carry its folder in their environment). */
  function stackProcesses(): { pid: number; cmdline: string }[] {
    const out = [];
    for (const d of readdirSync('/proc').filter((x) => /^\d+$/.test(x))) {
      try {
        const environ = readFileSync(`/proc/${d}/environ`, 'utf8').split('\0');
        if (!environ.includes(`POLYGLOT_DEV_STACK=${dir}`)) continue;
        if (/\) Z /.test(readFileSync(`/proc/${d}/stat`, 'utf8'))) continue;
        out.push({ pid: Number(d), cmdline: readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0').join(' ') });
      } catch {
        // gone, or not ours to read
      }
    }
    return out;
  }

  function statusLine(out: string, name: string): string {
    return out.split('\n').find((l) => l.trim().startsWith(`${name} `)) ?? '';
  }

  before(async () => {
    ports = {
      POLYGLOT_TEMPORAL_PORT: String(await freePort()),
      POLYGLOT_UI_PORT: String(await freePort()),
      POLYGLOT_S3_PORT: String(await freePort()),
      POLYGLOT_LLM_PORT: String(await freePort()),
      POLYGLOT_EMBED_PORT: String(await freePort()),
    };
    const up = await dev(['up', 'temporal', 's3', 'worker'], { ...ports, POLYGLOT_PROVIDERS: '' });
    assert.equal(up.code, 0, up.out);
  });

  after(async () => {
    await dev(['down']);
    for (const p of stackProcesses()) process.kill(p.pid, 'SIGKILL');
  });

  it('records its ports and credentials (mode 600) and answers as itself; no secret on any command line', async () => {
    assert.equal(statSync(file('dev.env')).mode & 0o777, 0o600);
    for (const [k, v] of Object.entries(ports)) assert.match(record(), new RegExp(`^${k}=${v}$`, 'm'));
    const st = await dev(['status']);
    for (const name of ['temporal', 's3', 'worker']) assert.match(statusLine(st.out, name), / up /, st.out);
    assert.match(statusLine(st.out, 'llm'), /DOWN.*not running/, st.out);
    const procs = stackProcesses();
    assert.ok(procs.length >= 3, `temporal, rclone and the worker: ${JSON.stringify(procs)}`);
    for (const p of procs)
      assert.ok(!p.cmdline.includes(secret()), `the S3 secret is on the command line of ${p.cmdline}`);
  });

  it('`dev up` again is a no-op, and takes the recorded ports, not the shell defaults', async () => {
    const before = ['temporal', 's3', 'worker'].map(pidOf);
    const up = await dev(['up', 'temporal', 's3', 'worker']);
    assert.equal(up.code, 0, up.out);
    assert.equal((up.out.match(/already running/g) ?? []).length, 3, up.out);
    assert.deepEqual(['temporal', 's3', 'worker'].map(pidOf), before);
    assert.match(record(), new RegExp(`^POLYGLOT_S3_PORT=${ports.POLYGLOT_S3_PORT}$`, 'm'));
  });

  it('refuses a shell port that differs from the running stack, for up and restart alike', async () => {
    const worker = pidOf('worker');
    const recorded = record();
    const other = String(await freePort());
    for (const args of [['up'], ['restart', 'worker']]) {
      const r = await dev(args, { POLYGLOT_S3_PORT: other });
      assert.notEqual(r.code, 0, r.out);
      assert.match(r.out, new RegExp(`POLYGLOT_S3_PORT=${other} \\(this stack's is ${ports.POLYGLOT_S3_PORT}\\)`));
      assert.match(r.out, /polyglot dev down/);
    }
    assert.equal(pidOf('worker'), worker, 'the worker was not touched');
    assert.equal(record(), recorded, 'the record was not rewritten');
  });

  it('`dev restart worker` replaces the worker and keeps the old logs (rotated, not truncated)', async () => {
    const old = pidOf('worker');
    const firstLog = readFileSync(file('logs', 'worker.log'), 'utf8');
    assert.match(firstLog, /polyglot worker up/);
    for (let i = 1; i <= 2; i++) {
      const r = await dev(['restart', 'worker']);
      assert.equal(r.code, 0, r.out);
    }
    assert.notEqual(pidOf('worker'), old);
    assert.ok(!stackProcesses().some((p) => p.pid === old), 'the old worker is gone');
    assert.equal(readFileSync(file('logs', 'worker.log.2'), 'utf8'), firstLog, 'the first run’s log, intact');
    assert.match(readFileSync(file('logs', 'worker.log.1'), 'utf8'), /polyglot worker up/);
    assert.match(
      readFileSync(file('logs', 'worker.log'), 'utf8'),
      new RegExp(`temporal=127.0.0.1:${ports.POLYGLOT_TEMPORAL_PORT}`),
    );
    const st = await dev(['status']);
    assert.match(statusLine(st.out, 'worker'), new RegExp(` up +pid ${pidOf('worker')} `), st.out);
  });

  it('`dev status` tells this stack’s S3 from a server with other credentials or another program on the port', async () => {
    // The S3 check signs with the recorded key pair: a server that does not accept it is not this stack's.
    const recorded = record();
    writeFileSync(file('dev.env'), recorded.replace(secret(), 'not-the-secret'), { mode: 0o600 });
    try {
      const st = await dev(['status']);
      assert.notEqual(st.code, 0);
      assert.match(statusLine(st.out, 's3'), /DOWN.*signature/i, st.out);
      assert.match(statusLine(st.out, 'temporal'), / up /, st.out);
    } finally {
      writeFileSync(file('dev.env'), recorded, { mode: 0o600 });
    }
    // rclone dies; a stranger takes its port: still DOWN, and said so.
    process.kill(-pidOf('s3'), 'SIGKILL');
    await until(() => !stackProcesses().some((p) => p.cmdline.includes('rclone')), 10_000, 'rclone to die');
    let stranger: Server | undefined;
    try {
      stranger = createServer((s) => {
        // Clients probing the port (a bare connect, then an HTTP request) may reset it.
        s.on('error', () => undefined);
        s.end('HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n');
      });
      // The kernel may hold the dead server's port a moment longer than /proc shows the process.
      await until(
        () =>
          new Promise<boolean>((resolve) => {
            stranger!.once('error', () => resolve(false));
            stranger!.listen(Number(ports.POLYGLOT_S3_PORT), '127.0.0.1', () => resolve(true));
          }),
        10_000,
        `port ${ports.POLYGLOT_S3_PORT} to be free for the stranger`,
      );
      const st = await dev(['status']);
      assert.match(statusLine(st.out, 's3'), /DOWN.*another process has its port/, st.out);
      const up = await dev(['up', 's3']);
      assert.notEqual(up.code, 0);
      assert.match(up.out, /port \d+ on 127\.0\.0\.1 is taken by another process/);
    } finally {
      await new Promise((r) => stranger?.close(r));
    }
    const up = await dev(['up', 's3']);
    assert.equal(up.code, 0, up.out);
    assert.match(statusLine((await dev(['status'])).out, 's3'), / up /);
  });

  it('`dev down` stops every process of the stack', async () => {
    const r = await dev(['down']);
    assert.equal(r.code, 0, r.out);
    assert.deepEqual(stackProcesses(), []);
  });
});
