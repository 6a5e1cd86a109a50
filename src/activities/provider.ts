import { ErrorType, PolyglotError } from '../common/errors';
import { PolicyViolationError, checkProvider, guardedFetch, readTrustPolicy, type TrustPolicy } from '../common/policy';
import { ChatClient } from '../llm/client';
import type { LimiterRegistry } from '../llm/limiter';
import type { Provider } from '../spec/sweep';
import { forActivity, type ActivityLimiter } from './waits';

/**
 * A client and the shared limiter for a provider. The API key is read here, on the worker, from the
 * environment variable the spec names — only if the worker's trust policy allows that variable and
 * host (src/common/policy.ts); it never travels through workflow history. Every request is checked
 * again (resolved addresses, no redirects) by the guarded fetch.
 */
export function clientFor(
  deps: { limiters: LimiterRegistry; env: NodeJS.ProcessEnv; fetchImpl?: typeof fetch; policy?: TrustPolicy },
  provider: Provider,
): { client: ChatClient; limiter: ActivityLimiter } {
  const policy = deps.policy ?? readTrustPolicy(deps.env);
  // Checked before the variable is read: a refused name is never looked up, let alone sent.
  const problems = checkProvider(policy, provider, `provider "${provider.id}"`);
  if (problems.length) throw new PolicyViolationError(problems);
  const apiKey = provider.apiKeyEnv ? deps.env[provider.apiKeyEnv] : undefined;
  if (provider.apiKeyEnv && !apiKey) {
    throw new PolyglotError(
      ErrorType.MissingSecret,
      `environment variable ${provider.apiKeyEnv} (provider "${provider.id}".apiKeyEnv) is not set on the worker; export it before starting the worker`,
    );
  }
  return {
    client: new ChatClient({
      baseUrl: provider.baseUrl,
      apiKey,
      timeoutMs: provider.timeoutSeconds * 1000,
      fetchImpl: guardedFetch(policy, deps.fetchImpl ?? fetch),
    }),
    // Bound to the calling activity: its waits heartbeat and end when the activity is cancelled.
    limiter: forActivity(
      deps.limiters.get(provider.id, {
        concurrency: provider.concurrency,
        requestsPerMinute: provider.requestsPerMinute,
        tokensPerMinute: provider.tokensPerMinute,
      }),
    ),
  };
}
