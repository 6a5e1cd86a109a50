import type { SearchAttributePair } from '@temporalio/common';
import { executeChild, patched, proxyActivities } from '@temporalio/workflow';
import type { Activities } from '../activities';
import type { StorageRef } from '../activities/types';
import { jobSpecFrom } from '../jobs/spec';
import {
  PAPER_SUBSAMPLE_SEED,
  PAPER_TRAIN_SIZE,
  type EvaluationSpec,
  type StudentSpec,
  type TrainingSpec,
} from '../spec/sweep';
import { keys } from '../storage/layout';
import type { Repair } from '../storage/repairs';
import { evalJobId, trainJobId } from '../common/workflow-ids';
import { jobWorkflow } from './job';
import { keptAlive } from './shared';

const { subsampleDataset } = proxyActivities<Activities>(keptAlive('30 minutes', '60s'));

/**
 * Versions of the job contracts: bumping one recomputes every output keyed by it.
 * train-2, eval-2: the job keys became `keys.jobDigest` (canonical JSON, like every other key) instead of a hash
 * of JSON.stringify, whose value followed the order of the spec's `training.hyper` fields. The new versions give
 * new keys, so a resumed sweep never takes a result stored under the old keys for one of the new: it trains and
 * evaluates again (anchors included), once.
 */
export const TRAIN_CODE_VERSION = 'train-2';
export const EVAL_CODE_VERSION = 'eval-2';

/** Small, history-friendly outcome of one evaluation job. */
export interface EvalOutcome {
  job: string;
  resultUri: string;
  cached: boolean;
  /** S for the language: mean of its tasks' primary metrics (paper §6). */
  score?: number;
  /** `<task>:<lang>` primary metrics and their stderrs. */
  metrics: Record<string, number>;
  /** A stored result that failed its integrity check and was discarded before the job ran again. */
  repaired?: Repair[];
}

export interface StudentWorkflowInput {
  sweepId: string;
  /** The data cell's id (`sweep/<id>/t=<teacher>/l=<lang>/dataset`). */
  cellId: string;
  teacher: string;
  language: string;
  datasetKey: string;
  manifestUri: string;
  student: StudentSpec;
  training: TrainingSpec;
  evaluation: EvaluationSpec;
  storage: StorageRef;
  searchAttributes?: SearchAttributePair[];
}

export interface StudentWorkflowResult {
  teacher: string;
  language: string;
  student: string;
  family: string;
  trainJob: string;
  trainResultUri: string;
  modelUri: string;
  trainMetrics: Record<string, number>;
  eval: EvalOutcome;
  /** Job results of this student that failed their integrity check and were discarded (train and eval). */
  repaired?: Repair[];
}

/** The evaluator's config for one language: also the identity of its result (with model and data). */
export function evalConfig(e: EvaluationSpec, language: string): Record<string, unknown> {
  return {
    suite: e.suite,
    languages: [language],
    limit: e.limit,
    batchSize: e.batchSize,
    temperature: e.temperature,
    topP: e.topP,
    maxNewTokens: e.maxNewTokens,
    seed: e.seed,
  };
}

export function evalKey(e: EvaluationSpec, language: string, model: string): string {
  const { batchSize: _ignored, ...identity } = evalConfig(e, language);
  return keys.jobDigest({
    ...identity,
    model,
    data: e.dataUri,
    image: e.image,
    command: e.command,
    v: EVAL_CODE_VERSION,
  });
}

/** The identity of a training job: its config (hyper-parameters, student, rows) and the job's code. */
export function trainKey(
  t: Pick<TrainingSpec, 'image' | 'command' | 'args'>,
  trainConfig: Record<string, unknown>,
): string {
  return keys.jobDigest({ trainConfig, image: t.image, command: t.command, args: t.args, v: TRAIN_CODE_VERSION });
}

/** Run one evaluation job and keep only what scoring needs from its result. */
export async function runEvaluation(
  e: EvaluationSpec,
  ids: { cellId: string; sweepId: string },
  language: string,
  model: { config?: string; input?: string },
  outputUri: string,
  searchAttributes?: SearchAttributePair[],
): Promise<EvalOutcome> {
  const config = { ...evalConfig(e, language), ...(model.config ? { model: model.config } : {}) };
  const inputs: Record<string, string> = { data: e.dataUri, ...(model.input ? { model: model.input } : {}) };
  const job = await executeChild(jobWorkflow, {
    workflowId: ids.cellId,
    args: [
      {
        runner: e.runner,
        heartbeatSeconds: e.heartbeatSeconds,
        maxJobAttempts: e.maxJobAttempts,
        spec: jobSpecFrom(e, ids, config, inputs, outputUri),
      },
    ],
    typedSearchAttributes: searchAttributes,
  });
  const metrics = Object.fromEntries(
    Object.entries(job.result.metrics).filter(([k]) => k.endsWith(`:${language}`) || k.endsWith(`:${language}:stderr`)),
  );
  return {
    job: job.jobName,
    resultUri: job.resultUri,
    cached: job.cached ?? false,
    score: job.result.metrics[`score:${language}`],
    metrics,
    ...(job.repaired?.length ? { repaired: job.repaired } : {}),
  };
}

/**
 * One student on one teacher's dataset: train (a GPU job), then evaluate the trained model on the
 * cell's language (a second job). Each job's output is keyed by its inputs, so a resumed sweep, or a
 * second sweep over the same data and settings, finds the results and launches nothing.
 */
export async function studentWorkflow(input: StudentWorkflowInput): Promise<StudentWorkflowResult> {
  const { student, training: t, evaluation: e, storage } = input;
  const family = student.family ?? student.id;
  const cell = { sweepId: input.sweepId, teacherId: input.teacher, language: input.language };
  const trainId = trainJobId(cell, student.id);
  const trainInputs: Record<string, string> = { dataset: input.manifestUri };
  let chosen: Record<string, unknown> = {};
  // The training rows are chosen here, by the same code as the metrics' subsample (src/metrics/subsample.ts), and
  // stored; the trainer reads them and checks the file against its digest. patched(): runs that started the
  // train job before this read no ids and replay as they ran.
  if (patched('training-subsample-ids')) {
    const trainSize = t.hyper.trainSize ?? PAPER_TRAIN_SIZE;
    const subsampleSeed = t.hyper.subsampleSeed ?? PAPER_SUBSAMPLE_SEED;
    const sub = await subsampleDataset({ storage, datasetKey: input.datasetKey, size: trainSize, seed: subsampleSeed });
    if (!sub.file) throw new Error(`subsample ${sub.uri} came back without its digest; resume the sweep`);
    trainInputs.subsample = sub.uri;
    chosen = { trainSize, subsampleSeed, subsampleSha256: sub.file.sha256 };
  }
  const trainConfig = {
    ...t.hyper,
    ...chosen,
    student: student.model,
    ...(student.chatTemplate ? { chatTemplate: student.chatTemplate } : {}),
  };
  const studentKey = keys.student(storage.prefix, input.datasetKey, student.id, trainKey(t, trainConfig));
  const trainOut = keys.folderUri(storage.bucket, studentKey);
  const train = await executeChild(jobWorkflow, {
    workflowId: trainId,
    args: [
      {
        runner: t.runner,
        heartbeatSeconds: t.heartbeatSeconds,
        maxJobAttempts: t.maxJobAttempts,
        spec: jobSpecFrom(t, { cellId: trainId, sweepId: input.sweepId }, trainConfig, trainInputs, trainOut),
      },
    ],
    typedSearchAttributes: input.searchAttributes,
  });
  const modelUri = train.result.outputs.model;
  if (!modelUri) {
    throw new Error(
      `training of ${student.id} on ${input.datasetKey} wrote no merged model (outputs: ${Object.keys(train.result.outputs).join(', ')}); keep 'merged' in training.hyper.save`,
    );
  }
  const ev = await runEvaluation(
    e,
    { cellId: evalJobId(cell, student.id), sweepId: input.sweepId },
    input.language,
    { input: modelUri },
    keys.folderUri(storage.bucket, keys.studentEval(studentKey, evalKey(e, input.language, modelUri))),
    input.searchAttributes,
  );
  return {
    teacher: input.teacher,
    language: input.language,
    student: student.id,
    family,
    trainJob: train.jobName,
    trainResultUri: train.resultUri,
    modelUri,
    trainMetrics: train.result.metrics,
    eval: ev,
    ...(train.repaired?.length || ev.repaired?.length
      ? { repaired: [...(train.repaired ?? []), ...(ev.repaired ?? [])] }
      : {}),
  };
}
