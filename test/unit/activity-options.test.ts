import assert from 'node:assert/strict';
import { ActivityCancellationType } from '@temporalio/workflow';
import { NON_RETRYABLE } from '../../src/common/errors';
import { heartbeating, keptAlive, specRetry } from '../../src/workflows/shared';

/** The shared heartbeat options give each workflow the values it spelled out before they were shared. */
describe('heartbeating activity options', () => {
  it('keptAlive: 30 s heartbeat, 12 bounded attempts, the taxonomy never retried', () => {
    assert.deepEqual(keptAlive('30 minutes', '60s'), {
      startToCloseTimeout: '30 minutes',
      heartbeatTimeout: '30 seconds',
      retry: {
        initialInterval: '1s',
        maximumInterval: '60s',
        maximumAttempts: 12,
        nonRetryableErrorTypes: [...NON_RETRYABLE],
      },
    });
    assert.equal(keptAlive('10 minutes').retry?.maximumInterval, '30s');
  });

  it("a provider queue's call with the spec's retry, waiting for a cancel to complete", () => {
    const retry = { maximumAttempts: 10, initialIntervalSeconds: 0.2, maximumIntervalSeconds: 2 };
    assert.deepEqual(
      heartbeating({
        taskQueue: 'llm-p',
        startToCloseTimeout: '5 minutes',
        heartbeatTimeout: '5 seconds',
        waitForCancel: true,
        retry: { ...specRetry(retry), backoffCoefficient: 2 },
      }),
      {
        taskQueue: 'llm-p',
        startToCloseTimeout: '5 minutes',
        heartbeatTimeout: '5 seconds',
        cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
        retry: {
          initialInterval: '0.2 seconds',
          maximumInterval: '2 seconds',
          backoffCoefficient: 2,
          maximumAttempts: 10,
          nonRetryableErrorTypes: [...NON_RETRYABLE],
        },
      },
    );
  });
});
