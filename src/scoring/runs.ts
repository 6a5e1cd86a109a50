/**
 * What a sweep's own runs give the score (paper §6): S_c per teacher × language × family from the student
 * evaluations, and B_ℓ, R_ℓ per family × language from the anchor evaluations. Shared by the sweep
 * workflow and `polyglot report` (which reads the same runs back from the sweep's summary), so both score
 * the same cohort. Pure: it runs inside workflows too.
 */
export interface StudentRunScore {
  teacher: string;
  language: string;
  family: string;
  score?: number;
  evalResultUri: string;
}

export interface AnchorRunScore {
  family: string;
  language: string;
  base: { score?: number };
  reference: { score?: number; resultUri: string };
}

export function scoringRuns(students: StudentRunScore[], anchors: AnchorRunScore[]) {
  return {
    // A student without S (its evaluation produced no score) is left out and flagged by the scorer.
    students: students
      .filter((st) => st.score !== undefined)
      .map((st) => ({
        teacher: st.teacher,
        language: st.language,
        family: st.family,
        result: st.score!,
        uri: st.evalResultUri,
      })),
    anchors: anchors.flatMap((a) =>
      a.base.score !== undefined && a.reference.score !== undefined
        ? [
            {
              family: a.family,
              language: a.language,
              base: a.base.score,
              reference: a.reference.score,
              uri: a.reference.resultUri,
            },
          ]
        : [],
    ),
  };
}
