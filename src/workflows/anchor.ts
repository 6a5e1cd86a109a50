import type { SearchAttributePair } from '@temporalio/common';
import type { StorageRef } from '../activities/types';
import type { EvaluationSpec } from '../spec/sweep';
import { anchorJobId } from '../common/workflow-ids';
import { keys } from '../storage/layout';
import { evalKey, runEvaluation, type EvalOutcome } from './student';

export interface AnchorWorkflowInput {
  sweepId: string;
  family: string;
  language: string;
  base: string;
  reference: string;
  evaluation: EvaluationSpec;
  storage: StorageRef;
  searchAttributes?: SearchAttributePair[];
}

export interface AnchorWorkflowResult {
  family: string;
  language: string;
  base: EvalOutcome;
  reference: EvalOutcome;
}

/**
 * B_ℓ and R_ℓ of a student family (paper §6): its base and reference models evaluated on one language.
 * The outputs live outside any sweep's prefix, keyed by model, language, suite and settings, so every
 * sweep that needs the same anchors reuses one evaluation instead of repeating it.
 */
export async function anchorWorkflow(input: AnchorWorkflowInput): Promise<AnchorWorkflowResult> {
  const { evaluation: e, storage, language } = input;
  const anchor = { sweepId: input.sweepId, family: input.family, language };
  const one = (which: 'base' | 'reference', model: string) =>
    runEvaluation(
      e,
      { cellId: anchorJobId(anchor, which), sweepId: input.sweepId },
      language,
      { config: model },
      keys.folderUri(
        storage.bucket,
        keys.anchorEval(storage.prefix, input.family, language, which, evalKey(e, language, model)),
      ),
      input.searchAttributes,
    );
  const [base, reference] = await Promise.all([one('base', input.base), one('reference', input.reference)]);
  return { family: input.family, language, base, reference };
}
