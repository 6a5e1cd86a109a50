import { sweepLeftovers } from './registry';
import { startStack, stopStack } from './stack';

/**
 * Mocha root hooks: one Temporal dev server and one S3 server for the whole run; at its end, every process
 * the run started is stopped and the run fails naming any that a test had left running (test/support/registry.ts).
 */
export const mochaHooks = {
  async beforeAll(this: Mocha.Context) {
    this.timeout(120_000);
    await startStack();
  },
  async afterAll(this: Mocha.Context) {
    this.timeout(60_000);
    try {
      await stopStack();
    } finally {
      const left = await sweepLeftovers();
      if (left.length > 0) {
        throw new Error(`processes left running by this test run (now killed):\n  ${left.join('\n  ')}`);
      }
    }
  },
};
