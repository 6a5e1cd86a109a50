/**
 * Runtime settings of a worker or CLI process, read once from the environment. Secrets stay in the
 * environment: nothing here is ever written to a spec, history, log or artifact.
 */
export interface RuntimeEnv {
  temporalAddress: string;
  temporalNamespace: string;
  s3Endpoint: string | undefined;
  s3Region: string;
  /** Task queue for workflows and non-LLM activities. */
  taskQueue: string;
}

export function readEnv(env: NodeJS.ProcessEnv = process.env): RuntimeEnv {
  return {
    temporalAddress: env.TEMPORAL_ADDRESS ?? '127.0.0.1:7233',
    temporalNamespace: env.TEMPORAL_NAMESPACE ?? 'default',
    s3Endpoint: env.S3_ENDPOINT || undefined,
    s3Region: env.AWS_REGION ?? 'us-east-1',
    taskQueue: env.POLYGLOT_TASK_QUEUE ?? 'polyglot',
  };
}

export function llmTaskQueue(providerId: string): string {
  return `llm-${providerId}`;
}
