import {
  PolicyViolationError,
  alwaysRefused,
  checkSweepSpecPolicy,
  readTrustPolicy,
  systemLookup,
  type Lookup,
} from '../common/policy';
import type { SweepSpec } from '../spec/sweep';

/**
 * The worker's trust policy as far as the CLI can know it (the worker is the authority and checks
 * again). When this machine's environment carries the policy settings (POLYGLOT_ALLOWED_*), it is taken
 * to be the worker's and every problem is an error; otherwise only what every worker refuses is an
 * error, and what the default policy would refuse is a warning.
 */
export async function specPolicyProblems(
  spec: SweepSpec,
  env: NodeJS.ProcessEnv = process.env,
  lookup: Lookup = systemLookup,
): Promise<{ errors: string[]; warnings: string[] }> {
  const policy = readTrustPolicy(env);
  const all = await checkSweepSpecPolicy(policy, spec, { lookup });
  if (policy.configured.length) return { errors: all, warnings: [] };
  const errors = await alwaysRefused(spec, lookup);
  const fields = new Set(errors.map((e) => e.split(':')[0]));
  return {
    errors,
    warnings: all
      .filter((p) => !fields.has(p.split(':')[0]))
      .map((p) => `${p} (under the default trust policy; the worker's own settings decide)`),
  };
}

/** Print the warnings; throw (exit 2, nothing started or written) on errors. */
export async function enforceSpecPolicy(spec: SweepSpec): Promise<void> {
  const { errors, warnings } = await specPolicyProblems(spec);
  for (const w of warnings) console.log(`warning: ${w}`);
  if (errors.length) throw new PolicyViolationError(errors);
}
