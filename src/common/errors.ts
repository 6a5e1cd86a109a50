/**
 * The one error taxonomy. Adapters throw these; `toTemporalFailure` maps them onto Temporal once,
 * so retry behaviour is decided in a single place and is visible in workflow history.
 * Type names double as Temporal `ApplicationFailure.type` values.
 */
export const ErrorType = {
  InvalidSpec: 'InvalidSpec',
  InvalidInput: 'InvalidInput',
  /** A sweep started under a workflow id other than `sweep/<sweepId>`: status, report and resume could not find it. */
  WrongWorkflowId: 'WrongWorkflowId',
  LlmBadRequest: 'LlmBadRequest',
  LlmAuth: 'LlmAuth',
  LlmContentFilter: 'LlmContentFilter',
  LlmRateLimited: 'LlmRateLimited',
  LlmServerError: 'LlmServerError',
  LlmTimeout: 'LlmTimeout',
  LlmConnection: 'LlmConnection',
  LlmBadResponse: 'LlmBadResponse',
  MissingSecret: 'MissingSecret',
  /** A spec asks for something the worker's trust policy forbids (a key variable, host, Secret, command, bucket). */
  PolicyViolation: 'PolicyViolation',
  StorageError: 'StorageError',
  /** A job ended in failure that running it again cannot fix (deadline, fail-fast exit code, bad image). */
  JobFailedPermanently: 'JobFailedPermanently',
  /**
   * A job failed in a way a NEW attempt (a new Job) may fix: backoff exhausted, pod lost. Retrying the
   * watcher activity would only re-attach to the same failed Job, so Temporal must not retry it; the
   * job workflow starts the next attempt instead.
   */
  JobFailed: 'JobFailed',
  JobResultInvalid: 'JobResultInvalid',
  /**
   * A stored artifact failed its integrity check (size, SHA-256 or seal) or does not parse, where the
   * reader cannot rebuild it. Retrying reads the same bytes: the message names the object and the way out.
   */
  CorruptArtifact: 'CorruptArtifact',
  /**
   * A sweep whose cells (or anchors) failed, each named in the message, after the others had finished: a
   * resume redoes only the failed ones. Thrown by the sweep workflow itself, non-retryable there.
   */
  CellsFailed: 'CellsFailed',
} as const;
export type ErrorTypeName = (typeof ErrorType)[keyof typeof ErrorType];

/** Types Temporal must never retry: retrying cannot fix them. */
export const NON_RETRYABLE: readonly ErrorTypeName[] = [
  ErrorType.InvalidSpec,
  ErrorType.InvalidInput,
  ErrorType.WrongWorkflowId,
  ErrorType.LlmBadRequest,
  ErrorType.LlmAuth,
  ErrorType.LlmContentFilter,
  ErrorType.MissingSecret,
  ErrorType.PolicyViolation,
  ErrorType.JobFailed,
  ErrorType.JobFailedPermanently,
  ErrorType.JobResultInvalid,
  ErrorType.CorruptArtifact,
];

export class PolyglotError extends Error {
  constructor(
    readonly type: ErrorTypeName,
    message: string,
    /** Server-advised wait before the next try (429 Retry-After), milliseconds. */
    readonly retryAfterMs?: number,
  ) {
    super(message);
    this.name = type;
  }
  get retryable(): boolean {
    return !NON_RETRYABLE.includes(this.type);
  }
}

export function isPolyglotError(e: unknown): e is PolyglotError {
  return e instanceof PolyglotError;
}

/** Map an HTTP status of an OpenAI-compatible server onto the taxonomy. */
export function llmErrorForStatus(status: number, body: string, retryAfterMs?: number): PolyglotError {
  const detail = summarizeBody(body);
  if (status === 429) return new PolyglotError(ErrorType.LlmRateLimited, `429 rate limited: ${detail}`, retryAfterMs);
  if (status === 401 || status === 403) {
    return new PolyglotError(
      ErrorType.LlmAuth,
      `${status} authentication/permission error: ${detail}; check the provider's apiKeyEnv variable on the worker`,
    );
  }
  if (status === 400 && /content[_ ]?(filter|policy)/i.test(body)) {
    return new PolyglotError(ErrorType.LlmContentFilter, `400 content filter: ${detail}`);
  }
  if (status === 400 || status === 404 || status === 413 || status === 422) {
    return new PolyglotError(ErrorType.LlmBadRequest, `${status} bad request: ${detail}`);
  }
  if (status === 408) return new PolyglotError(ErrorType.LlmTimeout, `408 request timeout: ${detail}`);
  return new PolyglotError(ErrorType.LlmServerError, `${status} server error: ${detail}`);
}

/** Parse `Retry-After` (seconds or HTTP date) into milliseconds; undefined if absent or unparseable. */
export function parseRetryAfter(header: string | null, now: number): number | undefined {
  if (!header) return undefined;
  const secs = Number(header);
  if (Number.isFinite(secs) && secs >= 0) return Math.round(secs * 1000);
  const at = Date.parse(header);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

function summarizeBody(body: string): string {
  try {
    const parsed = JSON.parse(body) as { error?: { message?: string } | string };
    const msg = typeof parsed.error === 'string' ? parsed.error : parsed.error?.message;
    if (msg) return msg.slice(0, 300);
  } catch {
    // not JSON: fall through to the raw text
  }
  return body.slice(0, 300).replace(/\s+/g, ' ') || '(empty body)';
}
