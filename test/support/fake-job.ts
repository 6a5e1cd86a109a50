/**
 * A job whose behaviour the test controls (the job contract of docs/architecture.md, "Job contract", without a GPU):
 * sleeps FAKE_JOB_SLEEP_MS, then writes `result.json` under POLYGLOT_OUTPUT_URI and exits with
 * FAKE_JOB_EXIT (default 0). Runs under the local runner as a real process.
 */
import { sha256Hex } from '../../src/common/hash';
import { makeS3Client, parseS3Uri, S3Store } from '../../src/storage/s3';

async function main() {
  const out = process.env.POLYGLOT_OUTPUT_URI!;
  const sleep = Number(process.env.FAKE_JOB_SLEEP_MS ?? 0);
  // FAKE_JOB_FAIL_BEFORE_ATTEMPT=n: attempts 0…n−1 exit 1 (a retryable failure), later ones succeed.
  const attempt = Number(process.env.POLYGLOT_JOB_ATTEMPT ?? 0);
  const failBefore = Number(process.env.FAKE_JOB_FAIL_BEFORE_ATTEMPT ?? 0);
  const exit = attempt < failBefore ? 1 : Number(process.env.FAKE_JOB_EXIT ?? 0);
  console.log(
    `fake job for ${process.env.POLYGLOT_CELL_ID} attempt ${attempt}: sleeping ${sleep} ms, then exit ${exit}`,
  );
  await new Promise((r) => setTimeout(r, sleep));
  const { bucket, key } = parseS3Uri(out);
  const store = new S3Store(makeS3Client(process.env.S3_ENDPOINT, process.env.AWS_REGION ?? 'us-east-1'), bucket);
  await store.putJson(`${key.replace(/\/+$/, '')}/result.json`, {
    status: exit === 0 ? 'succeeded' : 'failed',
    reason: exit === 0 ? undefined : `exit ${exit}`,
    metrics: { steps: 3, loss: 0.5, ...scores() },
    outputs: { model: `${out}/model` },
  });
  process.exit(exit);
}

/**
 * An evaluator's per-language score S for each language its config asks for (POLYGLOT_JOB_CONFIG): a
 * pure function of the model evaluated, so base, reference and each student differ, and reruns agree.
 * FAKE_JOB_SCORE fixes it instead.
 */
function scores(): Record<string, number> {
  const config = JSON.parse(process.env.POLYGLOT_JOB_CONFIG ?? '{}') as { languages?: string[]; model?: string };
  const inputs = JSON.parse(process.env.POLYGLOT_INPUTS ?? '{}') as { model?: string };
  // The bucket is left out: runs in different buckets of the same spec must agree.
  const model = (config.model ?? inputs.model ?? '').replace(/s3:\/\/[^/]+\//, 's3://');
  const fixed = process.env.FAKE_JOB_SCORE;
  const score = fixed !== undefined ? Number(fixed) : 0.2 + (parseInt(sha256Hex(model).slice(0, 6), 16) % 600) / 1000;
  return Object.fromEntries((config.languages ?? []).map((l) => [`score:${l}`, score]));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
