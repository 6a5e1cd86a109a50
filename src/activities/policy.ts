import {
  PolicyViolationError,
  checkSweepSpecPolicy,
  systemLookup,
  type Lookup,
  type TrustPolicy,
} from '../common/policy';
import type { SweepSpec } from '../spec/sweep';

export interface CheckSpecPolicyInput {
  spec: SweepSpec;
}

export function createPolicyActivities(deps: { policy: TrustPolicy; lookup?: Lookup }) {
  /**
   * The sweep's first step: every problem of the spec under this worker's trust policy, at once and
   * before any call or write, as one non-retryable PolicyViolation. Host names are resolved here too.
   * Each use (provider clients, job launches) checks again: the worker that holds a key may not be the
   * one running this, and a spec can reach activities without passing here (child workflows started by hand).
   */
  async function checkSpecPolicy(input: CheckSpecPolicyInput): Promise<void> {
    const problems = await checkSweepSpecPolicy(deps.policy, input.spec, { lookup: deps.lookup ?? systemLookup });
    if (problems.length) throw new PolicyViolationError(problems);
  }
  return { checkSpecPolicy };
}
