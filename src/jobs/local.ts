import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, openSync, closeSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { PolicyViolationError, readTrustPolicy } from '../common/policy';
import type { ForgetWait, JobHandle, JobRunner, JobStatus } from './runner';
import { jobEnvironment, jobName, type JobSpec } from './spec';

/**
 * The local backend: the same job spec run as a process on this machine (embedded stack, laptops).
 * State lives in files under `root/<job name>/` (pid, exit code, log), so a restarted worker
 * re-attaches to a job that is still running instead of starting it twice — as on Kubernetes.
 * `image` is ignored; `command`/`args` run directly. There is no Secret store locally: a secret
 * reference (`secretName`/`key`) resolves only through the operator's map to a worker variable
 * (POLYGLOT_LOCAL_SECRETS, src/common/policy.ts) — never to the worker variable the spec names, and the
 * job gets no other worker variable except the S3 settings and offline switches listed below.
 */
export class LocalJobRunner implements JobRunner {
  readonly kind = 'local' as const;
  private readonly children = new Map<string, ChildProcess>();

  /**
   * @param pathPrefix folders put before PATH for jobs, as an image's PATH would hold its entry points
   *   (the embedded stack: `.tools/ml-venv/bin`, where `polyglot-train` and `polyglot-eval` live).
   */
  constructor(
    private readonly root: string,
    private readonly baseEnv: NodeJS.ProcessEnv = process.env,
    private readonly pathPrefix: string[] = [],
    /** Jobs that run at once on this machine; the rest wait for a slot. */
    private readonly slots = 4,
    /** `secretName/key` → the worker variable that holds it (the operator's POLYGLOT_LOCAL_SECRETS). */
    private readonly secrets: ReadonlyMap<string, string> = readTrustPolicy(baseEnv).localSecrets,
  ) {}

  private dir(name: string): string {
    return path.join(this.root, name);
  }

  async submit(spec: JobSpec): Promise<JobHandle> {
    const name = jobName(spec.cellId, spec.attempt);
    const dir = this.dir(name);
    if (existsSync(path.join(dir, 'spec.json'))) return { name, namespace: 'local', attached: true };
    // The spec's env and secrets first, then this runner's own values over them: a spec cannot move
    // PATH, HOME, the model cache or the offline switches (runJob refuses such names first, with the fix;
    // this order is the last line of defence). The contract's variables are in `values` already.
    const jobEnv = jobEnvironment(spec);
    const env: NodeJS.ProcessEnv = Object.fromEntries(jobEnv.values.map((e) => [e.name, e.value]));
    for (const s of jobEnv.secrets) {
      const from = this.secrets.get(`${s.secretName}/${s.key}`);
      if (!from) throw new PolicyViolationError([`secretEnv ${s.name}: secret ${s.secretName}/${s.key} is not mapped`]);
      if (this.baseEnv[from] !== undefined) env[s.name] = this.baseEnv[from];
    }
    if (spec.envFromSecrets.length) throw new PolicyViolationError(['envFromSecrets: not available to local jobs']);
    // The S3 endpoint and credentials of this machine, and the offline switches of an air-gapped laptop
    // or CI (on a cluster these come from the pod's Secret and image instead): the worker's value wins.
    for (const k of [
      'S3_ENDPOINT',
      'AWS_ACCESS_KEY_ID',
      'AWS_SECRET_ACCESS_KEY',
      'AWS_REGION',
      'HF_HUB_OFFLINE',
      'HF_DATASETS_OFFLINE',
      'TRANSFORMERS_OFFLINE',
      'POLYGLOT_MODEL_CACHE',
      // A test run's marker (not a secret): lets the run find and stop a job that outlived its worker.
      'POLYGLOT_TEST_RUN',
    ]) {
      if (this.baseEnv[k] !== undefined) env[k] = this.baseEnv[k];
    }
    Object.assign(env, {
      PATH: [...this.pathPrefix, this.baseEnv.PATH ?? ''].filter(Boolean).join(path.delimiter),
      HOME: this.baseEnv.HOME,
    });
    if (env.HOME === undefined) delete env.HOME;
    mkdirSync(dir, { recursive: true });
    const log = openSync(path.join(dir, 'main.log'), 'a');
    // A wrapper shell first takes one of `slots` lock files (a GPU node runs so many pods, a laptop so
    // many training processes), then runs the job and records its exit code, so the code is recorded
    // even if this worker dies first. A lock is released by the kernel when its holder exits.
    const wrapper = [
      'mkdir -p "$POLYGLOT_JOB_ROOT/.slots";',
      'while :; do for s in $(seq 1 "$POLYGLOT_JOB_SLOTS"); do exec 9>"$POLYGLOT_JOB_ROOT/.slots/$s";',
      'if flock -n 9; then break 2; fi; done; sleep 0.5; done;',
      '"$@"; code=$?; echo $code > "$POLYGLOT_JOB_DIR/exit.tmp" && mv "$POLYGLOT_JOB_DIR/exit.tmp" "$POLYGLOT_JOB_DIR/exit"',
    ].join(' ');
    const child = spawn('/bin/sh', ['-c', wrapper, 'job', ...spec.command, ...spec.args], {
      env: { ...env, POLYGLOT_JOB_DIR: dir, POLYGLOT_JOB_ROOT: this.root, POLYGLOT_JOB_SLOTS: String(this.slots) },
      stdio: ['ignore', log, log],
      detached: true,
    });
    closeSync(log);
    child.unref();
    this.children.set(name, child);
    writeFileSync(path.join(dir, 'pid'), String(child.pid));
    // Written last: its presence means "submitted" to a later submit().
    writeFileSync(path.join(dir, 'spec.json'), JSON.stringify(spec));
    return { name, namespace: 'local', attached: false };
  }

  async status(handle: JobHandle): Promise<JobStatus> {
    const dir = this.dir(handle.name);
    if (!existsSync(path.join(dir, 'spec.json'))) return { phase: 'failed', reason: 'NotFound', retryable: true };
    if (existsSync(path.join(dir, 'cancelled'))) return { phase: 'failed', reason: 'Cancelled', retryable: false };
    if (existsSync(path.join(dir, 'exit'))) {
      const code = Number(readFileSync(path.join(dir, 'exit'), 'utf8').trim());
      if (code === 0) return { phase: 'succeeded' };
      const spec = JSON.parse(readFileSync(path.join(dir, 'spec.json'), 'utf8')) as JobSpec;
      const terminal = spec.nonRetryableExitCodes.includes(code);
      return { phase: 'failed', reason: terminal ? 'PodFailurePolicy' : 'Error', exitCode: code, retryable: !terminal };
    }
    const pid = Number(readFileSync(path.join(dir, 'pid'), 'utf8'));
    try {
      process.kill(pid, 0);
      return { phase: 'running' };
    } catch {
      return {
        phase: 'failed',
        reason: 'ProcessLost',
        message: 'the process exited without recording an exit code',
        retryable: true,
      };
    }
  }

  async cancel(handle: JobHandle): Promise<void> {
    const dir = this.dir(handle.name);
    if (!existsSync(dir)) return;
    writeFileSync(path.join(dir, 'cancelled'), '');
    this.stop(dir);
  }

  async forget(name: string, wait: ForgetWait = {}): Promise<void> {
    // Nothing to wait for here (the folder goes at once); honour a cancel that came first all the same.
    wait.signal?.throwIfAborted();
    const dir = this.dir(name);
    this.stop(dir);
    this.children.delete(name);
    rmSync(dir, { recursive: true, force: true });
  }

  /**
   * SIGTERM the job's process group, only while it is still this job: a job that recorded its exit code
   * has ended, and its pid (and group id) may since belong to another process. Where /proc shows the
   * process's environment, it must carry this job's POLYGLOT_JOB_DIR too.
   */
  private stop(dir: string): void {
    if (existsSync(path.join(dir, 'exit'))) return;
    let pid: number;
    try {
      pid = Number(readFileSync(path.join(dir, 'pid'), 'utf8'));
    } catch {
      return; // never started
    }
    if (!Number.isInteger(pid) || pid <= 1 || !isJobProcess(pid, dir)) return;
    try {
      process.kill(-pid, 'SIGTERM');
    } catch {
      // already gone
    }
  }

  async logs(handle: JobHandle): Promise<Record<string, string>> {
    const dir = this.dir(handle.name);
    if (!existsSync(dir)) return {};
    return Object.fromEntries(
      readdirSync(dir)
        .filter((f) => f.endsWith('.log'))
        .map((f) => [f, readFileSync(path.join(dir, f), 'utf8')]),
    );
  }
}

/**
 * Whether process group `pgid` is the one this runner started for the job in `dir`: its leader (the
 * wrapper shell) or, when the leader was killed and left the job running, another member carries the
 * job's folder in its environment. Without /proc (not Linux), trusts the pid file — the exit-file check
 * still applies. An unreadable environment (another user's process) is not ours.
 */
function isJobProcess(pgid: number, dir: string): boolean {
  if (!existsSync('/proc/self/environ')) return true;
  const marker = `POLYGLOT_JOB_DIR=${dir}`;
  const carries = (pid: string) => {
    try {
      return readFileSync(`/proc/${pid}/environ`, 'latin1').split('\0').includes(marker);
    } catch {
      return false;
    }
  };
  if (existsSync(`/proc/${pgid}`)) return carries(String(pgid));
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    let stat: string;
    try {
      stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    } catch {
      continue;
    }
    // "pid (comm) state ppid pgrp …": comm may hold spaces and parentheses, so split after the last ')'.
    const pgrp = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]);
    if (pgrp === pgid && carries(pid)) return true;
  }
  return false;
}
