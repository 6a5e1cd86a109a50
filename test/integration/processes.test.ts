import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { leftoverProcesses, spawnTracked, stopProcess, TEST_RUN_VAR } from '../support/processes';
import { until } from '../support/processes';

/** The test run's process hygiene (test/support/registry.ts): groups are killed whole, escapees are found. */
describe('test process registry', function () {
  this.timeout(30_000);

  function alive(pid: number): boolean {
    try {
      // A zombie is dead for our purposes: it holds no resources and runs nothing.
      return !/\) Z /.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
    } catch {
      return false;
    }
  }

  it('stops a child with the processes it forked, and the final scan finds one that left its group', async () => {
    // Two grandchildren in the child's group, one in a session of its own (as the local runner's jobs are).
    const child = spawnTracked(
      'sh',
      ['-c', 'sleep 300 & echo $!; setsid sleep 301 & echo $!; wait'],
      { stdio: ['ignore', 'pipe', 'ignore'] },
      'registry test',
    );
    let out = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    await until(() => out.trim().split('\n').length >= 2, 10_000, 'the grandchildren to start');
    const [inGroup, escaped] = out.trim().split('\n').map(Number) as [number, number];
    assert.ok(
      readFileSync(`/proc/${inGroup}/environ`, 'utf8')
        .split('\0')
        .includes(`${TEST_RUN_VAR}=${process.env[TEST_RUN_VAR]}`),
    );

    await stopProcess(child, 'SIGTERM');
    await until(() => !alive(inGroup), 5000, 'the grandchild in the group to die with it');
    assert.ok(alive(escaped), 'setsid took this one out of the group');

    const left = leftoverProcesses().map((p) => p.pid);
    assert.ok(left.includes(escaped), `the scan names the escaped grandchild: ${left.join(', ')}`);
    assert.ok(!left.includes(process.pid), 'the test process itself is not a leftover');
    process.kill(escaped, 'SIGKILL');
    await until(() => !alive(escaped), 5000, 'the escaped grandchild to die');
    assert.ok(!leftoverProcesses().some((p) => p.pid === escaped || p.pid === inGroup));
  });
});
