import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';

/**
 * Every process a test starts is registered here and stopped with its children, even when the test
 * fails or times out, and the run ends by checking that none is left (test/support/hooks.ts).
 *
 * Two mechanisms, because neither is enough alone: each child is spawned `detached`, so it leads a process
 * group of its own and `kill(-pgid)` reaches the helpers it forks (a shell, a Python server's workers); and
 * every process started during the run inherits POLYGLOT_TEST_RUN=<uuid>, so the final scan of /proc also
 * finds what left its group (the local runner's jobs start their own session, kwokctl daemonizes the control
 * plane) or was started by something other than these helpers (the Temporal test server, kube-up.sh).
 */
export const TEST_RUN_VAR = 'POLYGLOT_TEST_RUN';

/** This run's marker; scripts/test.sh sets it so that its own last sweep can look for the same one. */
export function testRunId(): string {
  process.env[TEST_RUN_VAR] ||= randomUUID();
  return process.env[TEST_RUN_VAR];
}
testRunId();

interface Entry {
  child: ChildProcess;
  what: string;
}
const live = new Map<number, Entry>();

function alive(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null;
}

/** Signal a tracked child's whole process group; falls back to the child alone if it has no group. */
function signalGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    try {
      child.kill(signal);
    } catch {
      // already gone
    }
  }
}

/** Register a child started elsewhere (it must have been spawned `detached` for its children to be reached). */
export function track(child: ChildProcess, what: string): ChildProcess {
  if (child.pid === undefined) return child;
  const pid = child.pid;
  live.set(pid, { child, what });
  // The group may outlive its leader (a forked helper), so the entry stays until the group is signalled.
  child.once('exit', () => {
    if (live.get(pid)?.child === child) live.set(pid, { child, what: `${what} (leader exited)` });
  });
  return child;
}

/**
 * `spawn`, for tests: the child leads its own process group, carries this run's marker in its environment
 * (also when the caller passes a whole environment of its own) and is registered until it is stopped.
 */
export function spawnTracked(cmd: string, args: string[], opts: SpawnOptions = {}, what?: string): ChildProcess {
  const env = { ...(opts.env ?? process.env), [TEST_RUN_VAR]: testRunId() };
  const child = spawn(cmd, args, { ...opts, env, detached: true });
  return track(child, what ?? [cmd, ...args].join(' ').slice(0, 200));
}

/** Stop a tracked child with its group: `signal` first, SIGKILL after `graceMs`; resolves when the leader is gone. */
export async function stopProcess(
  child: ChildProcess,
  signal: NodeJS.Signals = 'SIGKILL',
  graceMs = 5000,
): Promise<void> {
  const exited = new Promise<void>((resolve) => {
    if (!alive(child)) resolve();
    else child.once('exit', () => resolve());
  });
  signalGroup(child, signal);
  if (signal !== 'SIGKILL') {
    const timer = setTimeout(() => signalGroup(child, 'SIGKILL'), graceMs);
    await exited;
    clearTimeout(timer);
  } else {
    await exited;
  }
  // Whatever the leader left behind in its group goes with it.
  signalGroup(child, 'SIGKILL');
  if (child.pid !== undefined && live.get(child.pid)?.child === child) live.delete(child.pid);
}

/** SIGKILL every registered group at once (synchronous: also usable from an 'exit' handler). */
export function killAllTracked(): string[] {
  const named: string[] = [];
  for (const [pid, { child, what }] of live) {
    if (alive(child)) named.push(`pid ${pid}: ${what}`);
    signalGroup(child, 'SIGKILL');
  }
  live.clear();
  return named;
}

// A run interrupted (Ctrl-C, a CI timeout's SIGTERM) still takes its processes with it.
process.once('exit', () => killAllTracked());
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.once(sig, () => {
    killAllTracked();
    // Re-raised only when nobody else (mocha) handles it, so the default action still ends the run.
    if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
  });
}

function procText(pid: number, file: string): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/${file}`, 'utf8');
  } catch {
    return undefined;
  }
}

/** This process and its ancestors: they carry the marker when scripts/test.sh exported it, and are not leftovers. */
function selfAndAncestors(): Set<number> {
  const out = new Set<number>();
  let pid = process.pid;
  while (pid > 1 && !out.has(pid)) {
    out.add(pid);
    const stat = procText(pid, 'stat');
    // Field 4 (ppid) follows the command name, which is in parentheses and may itself contain spaces.
    const ppid = stat ? Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) : NaN;
    if (!Number.isInteger(ppid)) break;
    pid = ppid;
  }
  return out;
}

/** Processes on this machine (Linux /proc) whose environment carries `runId`, except this one and its ancestors. */
export function leftoverProcesses(runId = testRunId()): { pid: number; cmdline: string }[] {
  let pids: number[];
  try {
    pids = readdirSync('/proc')
      .filter((d) => /^\d+$/.test(d))
      .map(Number);
  } catch {
    return []; // no /proc: the group kills above are all there is
  }
  const mine = selfAndAncestors();
  const marker = `${TEST_RUN_VAR}=${runId}`;
  const out: { pid: number; cmdline: string }[] = [];
  for (const pid of pids) {
    if (mine.has(pid)) continue;
    const environ = procText(pid, 'environ');
    if (!environ?.split('\0').includes(marker)) continue;
    const stat = procText(pid, 'stat');
    if (stat && stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')) continue; // a zombie holds nothing
    out.push({ pid, cmdline: (procText(pid, 'cmdline') ?? '').split('\0').join(' ').trim().slice(0, 200) });
  }
  return out;
}

/**
 * The end of a run: kill every registered group, then wait a little for processes that are stopping by
 * themselves (a control plane being torn down), SIGKILL what is left with the marker, and name all of it.
 */
export async function sweepLeftovers(graceMs = 5000): Promise<string[]> {
  const named = killAllTracked();
  const deadline = Date.now() + graceMs;
  let left = leftoverProcesses();
  while (left.length > 0 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 200));
    left = leftoverProcesses();
  }
  for (const p of left) {
    try {
      process.kill(p.pid, 'SIGKILL');
    } catch {
      // gone meanwhile
    }
    named.push(`pid ${p.pid}: ${p.cmdline}`);
  }
  return named;
}
