import { ErrorType, PolyglotError } from '../common/errors';
import { ChatClient } from '../llm/client';
import type { LimiterRegistry } from '../llm/limiter';
import type { Provider } from '../spec/sweep';
import { forActivity, type ActivityLimiter } from './waits';

/**
 * A client and the shared limiter for a provider. The API key is read here, on the worker, from the
 * environment variable the spec names; it never travels through workflow history.
 */
export function clientFor(
  deps: { limiters: LimiterRegistry; env: NodeJS.ProcessEnv; fetchImpl?: typeof fetch },
  provider: Provider,
): { client: ChatClient; limiter: ActivityLimiter } {
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
      fetchImpl: deps.fetchImpl,
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
