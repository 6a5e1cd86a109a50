/**
 * What workflows need to know of repairs. Apart from integrity.ts, which hashes with node:crypto and so
 * must stay out of the workflow bundle.
 */

/** One discarded artifact: shown in workflow history (activity results) and in `sweep status`. */
export interface Repair {
  key: string;
  reason: string;
}

/** Repairs kept per cell in progress state: enough to show what happened, small enough for history. */
export const MAX_REPAIRS_SHOWN = 20;
