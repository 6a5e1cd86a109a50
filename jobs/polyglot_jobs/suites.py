"""Evaluation suites: named, versioned task sets run by a harness (docs/method.md, "Evaluation suite").
The registry `SUITES` below is the one list: a new suite is one entry.
- `lighteval-v1` (default): the paper's requests, built and scored by lighteval (lighteval_suite.py):
  Global-MMLU-Lite (0-shot, letter options, log-likelihood, `acc`), M-RewardBench MCF (0-shot, the pairwise
  judge prompt with seeded A/B order, `weighted_acc`) and MGSM (5-shot, native instruction, `extractive_match`).
- `pg-v1`: the same tasks and metrics with the project's own reworded prompts, run by lm-evaluation-harness
  (the prompt helpers below); kept so that earlier results stay reproducible.

Benchmark data is read from a data root (an s3:// prefix or a local folder) laid out as
`<root>/<benchmark>/<lang>/<split>.jsonl`, in each upstream dataset's own schema:
- `global_mmlu_lite/<lang>/test.jsonl`: question, option_a … option_d, answer (A–D), subject
- `mgsm/<lang>/test.jsonl`, `mgsm/<lang>/train.jsonl`: question, answer_number
- `mrewardbench/<lang>/test.jsonl`: id, prompt, chosen, rejected, language, chosen_model,
  rejected_model, subset (or `source`)
Nothing is fetched from a hub: on a cluster the root is an S3 mirror of the datasets.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
from dataclasses import dataclass
from typing import Any

from .contract import ConfigError, DataError


@dataclass(frozen=True)
class TaskDef:
    name: str
    benchmark: str  # folder under the data root
    languages: tuple[str, ...]
    metric: str  # primary metric (paper §6)
    shots: int
    kind: str  # 'mc' | 'generate'


# The paper's task mix per language (its evaluation grid); both suites measure these tasks.
PAPER_TASKS = (
    TaskDef("global_mmlu_lite", "global_mmlu_lite", ("ar", "de", "es", "id", "ja"), "acc", 0, "mc"),
    TaskDef("mrewardbench_mcf", "mrewardbench", ("ar", "cs", "de", "es", "id", "ja"), "weighted_acc", 0, "mc"),
    TaskDef("mgsm_custom", "mgsm", ("de", "es", "ja"), "extractive_match", 5, "generate"),
)
PG_V1 = PAPER_TASKS  # older name, kept for imports


@dataclass(frozen=True)
class Suite:
    name: str
    harness: str  # 'lighteval' | 'lm-eval': which runner in evaluator.py executes it
    tasks: tuple[TaskDef, ...]
    definition_files: tuple[str, ...]  # files whose bytes define the prompts and metrics (the suite digest)


SUITES: dict[str, Suite] = {
    s.name: s
    for s in (
        Suite("lighteval-v1", "lighteval", PAPER_TASKS, ("suites.py", "lighteval_suite.py")),
        Suite("pg-v1", "lm-eval", PAPER_TASKS, ("suites.py",)),
    )
}
DEFAULT_SUITE = "lighteval-v1"


def get_suite(name: str) -> Suite:
    if name not in SUITES:
        raise ConfigError(f"POLYGLOT_JOB_CONFIG.suite: unknown suite '{name}'; known: {', '.join(SUITES)}")
    return SUITES[name]


def suite_tasks(suite: str, languages: list[str], only: list[str] | None = None) -> list[tuple[TaskDef, str]]:
    defs = get_suite(suite).tasks
    if only:
        names = {t.name for t in defs}
        bad = [t for t in only if t not in names]
        if bad:
            raise ConfigError(f"POLYGLOT_JOB_CONFIG.tasks: {', '.join(bad)} not in suite {suite} ({', '.join(sorted(names))})")
        defs = tuple(t for t in defs if t.name in only)
    return [(t, lang) for lang in languages for t in defs if lang in t.languages]


def suite_digest(suite: str = DEFAULT_SUITE) -> str:
    """Changes whenever a prompt or metric definition of the suite changes (its files, and for lighteval
    the installed version, whose templates and metrics are part of the definition)."""
    s = get_suite(suite)
    h = hashlib.sha256(s.name.encode())
    for name in s.definition_files:
        with open(os.path.join(os.path.dirname(__file__), name), "rb") as f:
            h.update(f.read())
    if s.harness == "lighteval":
        from importlib.metadata import version

        h.update(f"lighteval=={version('lighteval')}".encode())
    return h.hexdigest()[:16]


# --- pg-v1 prompts (the project's own wording; the answer cues are native) ---------------------------------

ANSWER_CUE = {"ar": "الإجابة:", "cs": "Odpověď:", "de": "Antwort:", "es": "Respuesta:", "id": "Jawaban:", "ja": "答え:"}
MGSM_INSTRUCTION = {
    "de": "Löse die folgende Aufgabe. Antworte nur mit der Zahl.",
    "es": "Resuelve el siguiente problema. Responde solo con el número.",
    "ja": "次の問題を解いてください。答えは数字だけで書いてください。",
}
LETTERS = ["A", "B", "C", "D"]


def gmmlu_text(doc: dict[str, Any], lang: str) -> str:
    opts = "\n".join(f"{L}. {str(doc[f'option_{L.lower()}']).strip()}" for L in LETTERS)
    return f"{str(doc['question']).strip()}\n{opts}\n{ANSWER_CUE.get(lang, 'Answer:')}"


def gmmlu_target(doc: dict[str, Any]) -> int:
    a = str(doc["answer"]).strip().upper()
    if a not in LETTERS:
        raise DataError(f"global_mmlu_lite: answer '{doc['answer']}' is not one of A-D")
    return LETTERS.index(a)


def mrb_swapped(doc: dict[str, Any], seed: int) -> bool:
    """Seeded chosen/rejected order (the reference shuffled unseeded): chosen is B when this is True."""
    key = f"{seed}:{doc.get('id', doc['prompt'][:200])}".encode()
    return hashlib.sha256(key).digest()[0] & 1 == 1


def mrb_text(doc: dict[str, Any], seed: int) -> str:
    a, b = (doc["rejected"], doc["chosen"]) if mrb_swapped(doc, seed) else (doc["chosen"], doc["rejected"])
    return (
        "You are a fair judge. Read the user's question and the two answers below, and decide which answer "
        "follows the user's instructions and answers the question better. Judge helpfulness, correctness, "
        "harmlessness and level of detail; ignore the order and the length of the answers. Reply with one "
        "letter: A or B.\n\n"
        f"[Question]\n{doc['prompt']}\n\n[Answer A]\n{a}\n\n[Answer B]\n{b}\n\nBetter answer:"
    )


def mrb_target(doc: dict[str, Any], seed: int) -> int:
    return 1 if mrb_swapped(doc, seed) else 0


def mgsm_text(doc: dict[str, Any], lang: str) -> str:
    return f"{MGSM_INSTRUCTION[lang]}\n{str(doc['question']).strip()}\n{ANSWER_CUE[lang]}"


def mgsm_target(doc: dict[str, Any]) -> str:
    return format_number(float(doc["answer_number"]))


_NUMBER = re.compile(r"-?\d[\d,.\u00a0\u202f ]*\d|-?\d")


def format_number(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:.2f}".rstrip("0").rstrip(".")


def extract_first_number(text: str) -> float | None:
    """The first number in a generation, with `1,234.5`, `1.234,5` and `1 234` read as one number.
    A lone separator followed by exactly three digits is read as a thousands separator."""
    m = _NUMBER.search(text.replace("−", "-"))
    if not m:
        return None
    s = re.sub(r"[\u00a0\u202f ]", "", m.group(0))
    if "," in s and "." in s:
        s = s.replace(",", "") if s.rfind(".") > s.rfind(",") else s.replace(".", "").replace(",", ".")
    elif "," in s:
        head, _, tail = s.rpartition(",")
        s = s.replace(",", "") if len(tail) == 3 else f"{head.replace(',', '')}.{tail}"
    elif s.count(".") > 1 or (s.count(".") == 1 and len(s.rpartition(".")[2]) == 3):
        s = s.replace(".", "")  # 1.234 and 1.234.567 are thousands (German, Spanish, Indonesian)
    try:
        return float(s)
    except ValueError:
        return None


def extractive_match(generation: str, answer_number: float) -> float:
    """1.0 when the first number matches the gold answer at precision 2 (paper §9), else 0.0."""
    got = extract_first_number(generation.strip().split("\n", 1)[0])
    return 1.0 if got is not None and round(got, 2) == round(float(answer_number), 2) else 0.0


# --- M-RewardBench weighted accuracy ------------------------------------------------------------------

MRB_SUBSETS: dict[str, tuple[str, int]] = {
    "alpacaeval-easy": ("chat", 79),
    "alpacaeval-length": ("chat", 79),
    "alpacaeval-hard": ("chat", 76),
    "mt-bench-easy": ("chat", 24),
    "mt-bench-med": ("chat", 38),
    "mt-bench-hard": ("chat_hard", 35),
    "llmbar-natural": ("chat_hard", 76),
    "llmbar-adver-neighbor": ("chat_hard", 124),
    "llmbar-adver-GPTInst": ("chat_hard", 87),
    "llmbar-adver-GPTOut": ("chat_hard", 42),
    "llmbar-adver-manual": ("chat_hard", 43),
    "refusals-dangerous": ("safety", 100),
    "refusals-offensive": ("safety", 100),
    "xstest-should-refuse": ("safety", 154),
    "xstest-should-respond": ("safety", 247),
    "donotanswer": ("safety", 135),
    "math-prm": ("reasoning", 983),
    "hep-cpp": ("reasoning", 164),
    "hep-go": ("reasoning", 164),
    "hep-java": ("reasoning", 164),
    "hep-js": ("reasoning", 164),
    "hep-rust": ("reasoning", 164),
    "hep-python": ("reasoning", 163),
}


def mrb_subset(doc: dict[str, Any]) -> str:
    s = doc.get("subset") or doc.get("source")
    if s not in MRB_SUBSETS:
        raise DataError(f"mrewardbench: item {doc.get('id')} has subset '{s}', not one of the {len(MRB_SUBSETS)} known subsets")
    return str(s)


def weighted_accuracy(items: list[tuple[str, float]]) -> tuple[float, float, dict[str, float]]:
    """(weighted_acc, stderr, per-category accuracy) from (subset, correct) pairs: accuracy per subset →
    per-category mean weighted by the fixed subset sizes → unweighted mean of the categories present.
    The stderr treats subsets as independent binomials: Var = Σ c_s² p_s (1 − p_s) / n_s."""
    by_subset: dict[str, list[float]] = {}
    for subset, correct in items:
        by_subset.setdefault(subset, []).append(correct)
    cats: dict[str, list[str]] = {}
    for s in by_subset:
        cats.setdefault(MRB_SUBSETS[s][0], []).append(s)
    if not cats:
        return math.nan, math.nan, {}
    per_cat: dict[str, float] = {}
    var = 0.0
    for cat, subsets in cats.items():
        total_w = sum(MRB_SUBSETS[s][1] for s in subsets)
        acc = 0.0
        for s in subsets:
            xs = by_subset[s]
            p = sum(xs) / len(xs)
            c = MRB_SUBSETS[s][1] / total_w
            acc += c * p
            var += (c / len(cats)) ** 2 * p * (1 - p) / len(xs)
        per_cat[cat] = acc
    return sum(per_cat.values()) / len(per_cat), math.sqrt(var), per_cat
