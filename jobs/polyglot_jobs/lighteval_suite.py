"""The `lighteval-v1` suite: the paper's evaluation requests, produced and scored by lighteval itself.

What lighteval does here (docs/method.md, "Evaluation suite"):
- Global-MMLU-Lite: lighteval's multilingual multiple-choice template (`get_mcq_prompt_function`, letter
  options, the language's own "question"/"answer" words), 0-shot, log-likelihood over the letters, `acc`
  (lighteval's formulation rule picks unnormalised accuracy for letter options).
- MGSM: the question, a blank line, a native-language instruction to answer with only the number, and
  "Answer:"; 5 shots from the train split in file order; at most 50 new tokens, stop at a newline;
  lighteval's `MultilingualExtractiveMatchMetric` (expression extraction without an anchor, first match,
  precision 2) -> `extractive_match`.
- M-RewardBench: the pairwise judge prompt in lighteval's multiple-choice template, the two answers as
  options A/B in a seeded order, log-likelihood over A/B (`acc_norm_token`); `weighted_acc` is computed here from
  lighteval's per-item results (suites.weighted_accuracy), because a lighteval corpus metric never sees an
  item's subset.

Data comes from Polyglot's data root (suites.py), handed to lighteval in memory: nothing is fetched from a hub.
The model runs through lighteval's `TransformersModel` inside lighteval's `Pipeline`.
"""

from __future__ import annotations

import contextlib
import tempfile
import types
from collections.abc import Callable, Iterator
from string import ascii_uppercase
from typing import Any

from .contract import ConfigError, DataError
from .suites import TaskDef, mrb_subset, mrb_swapped

# Polyglot language code -> lighteval's Language member name.
LANGUAGES = {"ar": "ARABIC", "cs": "CZECH", "de": "GERMAN", "es": "SPANISH", "id": "INDONESIAN", "ja": "JAPANESE"}

# The instruction that asks for the bare number, per language: the paper's own strings (data, not code).
MGSM_ONLY_NUMBER = {
    "en": "Answer with only the number.",
    "de": "Antworte nur mit der Zahl.",
    "es": "Responde solo con el número.",
    "ja": "数字のみで答えてください。",
    "ar": "أجب بالرقم فقط.",
    "id": "Jawab hanya dengan angka.",
}

# The pairwise judge instruction used by M-RewardBench's generative evaluation and by the paper, kept
# byte for byte (a judge prompt is a protocol: its quirks, like the missing space before "Don't", are part of
# the measurement). {src_lang}/{tgt_lang} receive the row's `language` field (e.g. deu_Latn).
MRB_JUDGE = (
    "Please act as an impartial judge and evaluate the quality of the responses provided by two AI assistants "
    "to the user question displayed below. The question provided is in {src_lang}. You should choose the "
    "assistant that follows the user's instructions and answers the user's question better. Your evaluation "
    "should consider factors such as the helpfulness, relevance, accuracy, depth, creativity, and level of "
    "detail of their responses. Also, make sure that the assistant responses are in {tgt_lang}. Begin your "
    "evaluation by comparing the two responses. Avoid any position biases and ensure that the order in which "
    "the responses were presented does not influence your decision. Do not allow the length of the responses "
    "to influence your evaluation. Do not favor certain names of the assistants. Be as objective as possible. "
    "After providing your explanation, output your final verdict by strictly following this format: "
    '"A" if assistant A is better, "B" if assistant B is better.'
    "Don't put any quotation marks around your final verdict. "
    "Here is the user question: {question} "
)

MGSM_GENERATION_SIZE = 50
MGSM_STOP = ("\n",)


def language(lang: str) -> Any:
    from lighteval.utils.language import Language

    if lang not in LANGUAGES:
        raise ConfigError(f"POLYGLOT_JOB_CONFIG.languages: '{lang}' has no lighteval language; known: {', '.join(LANGUAGES)}")
    return getattr(Language, LANGUAGES[lang])


# --- adapters: a dataset row -> the inputs of lighteval's templates ----------------------------------------


def gmmlu_input(row: dict[str, Any]) -> dict[str, Any]:
    answer = str(row["answer"]).strip().upper()
    if answer not in ("A", "B", "C", "D"):
        raise DataError(f"global_mmlu_lite: answer '{row['answer']}' is not one of A-D")
    return {
        "question": row["question"],
        "choices": [row["option_a"], row["option_b"], row["option_c"], row["option_d"]],
        "gold_idx": ascii_uppercase.index(answer),
    }


def mrb_input(row: dict[str, Any], seed: int) -> dict[str, Any]:
    """The judge prompt with the two answers as options; chosen is B when the seeded coin says so
    (the paper shuffled with Python's global generator, so its order depended on everything drawn before)."""
    swapped = mrb_swapped(row, seed)
    choices = [row["rejected"], row["chosen"]] if swapped else [row["chosen"], row["rejected"]]
    question = MRB_JUDGE.format(src_lang=row["language"], tgt_lang=row["language"], question=row["prompt"])
    return {"question": question, "choices": choices, "gold_idx": 1 if swapped else 0}


def mgsm_prompt(lang: str) -> Callable[[dict[str, Any], str | None], Any]:
    from lighteval.tasks.requests import Doc

    instruction = MGSM_ONLY_NUMBER.get(lang, MGSM_ONLY_NUMBER["en"])

    def prompt(row: dict[str, Any], task_name: str | None = None) -> Any:
        return Doc(
            task_name=task_name or "",
            query=f"{row['question']}\n\n{instruction}\nAnswer:",
            choices=[str(row["answer_number"])],
            gold_index=0,
        )

    return prompt


# --- task configs ---------------------------------------------------------------------------------------


def mgsm_metric(lang: str) -> Any:
    import numpy as np
    from lighteval.metrics.dynamic_metrics import MultilingualExtractiveMatchMetric
    from lighteval.metrics.utils.extractive_match_utils import ExprExtractionConfig
    from lighteval.metrics.utils.metric_utils import SampleLevelMetric
    from lighteval.tasks.requests import SamplingMethod

    return SampleLevelMetric(
        metric_name="extractive_match",
        sample_level_fn=MultilingualExtractiveMatchMetric(
            language=language(lang),
            gold_extraction_target=(ExprExtractionConfig(try_extract_without_anchor=True),),
            pred_extraction_target=(ExprExtractionConfig(try_extract_without_anchor=True),),
            aggregation_function=max,
            fallback_mode="first_match",
            extraction_mode="first_match",
            precision=2,
        ),
        category=SamplingMethod.GENERATIVE,
        corpus_level_fn=np.mean,
        higher_is_better=True,
    )


def task_name(t: TaskDef, lang: str) -> str:
    return f"{t.name}:{lang}"


def task_config(t: TaskDef, lang: str, seed: int, generation_size: int = MGSM_GENERATION_SIZE) -> Any:
    """lighteval's task config for (task, language). `hf_repo` only labels the data: the rows are injected."""
    from lighteval.metrics.dynamic_metrics import LogLikelihoodAccMetric
    from lighteval.metrics.normalizations import LogProbCharNorm, LogProbPMINorm, LogProbTokenNorm
    from lighteval.tasks.lighteval_task import LightevalTaskConfig
    from lighteval.tasks.multilingual.utils.task_utils import get_metrics_for_formulation
    from lighteval.tasks.templates.multichoice import get_mcq_prompt_function
    from lighteval.tasks.templates.utils.formulation import MCFFormulation

    common: dict[str, Any] = {"name": task_name(t, lang), "hf_repo": f"polyglot/{t.benchmark}", "hf_subset": lang}
    if t.name == "global_mmlu_lite":
        return LightevalTaskConfig(
            **common,
            prompt_function=get_mcq_prompt_function(language(lang), gmmlu_input, formulation=MCFFormulation()),
            evaluation_splits=("test",),
            few_shots_split="dev",
            hf_avail_splits=("test", "dev"),
            # The paper's list; for letter options lighteval's rule reduces it to plain `acc`.
            metrics=get_metrics_for_formulation(
                MCFFormulation(),
                [
                    LogLikelihoodAccMetric(normalization=LogProbTokenNorm()),
                    LogLikelihoodAccMetric(normalization=LogProbCharNorm()),
                    LogLikelihoodAccMetric(normalization=LogProbPMINorm()),
                ],
            ),
        )
    if t.name == "mrewardbench_mcf":
        return LightevalTaskConfig(
            **common,
            prompt_function=get_mcq_prompt_function(
                language(lang), lambda row: mrb_input(row, seed), formulation=MCFFormulation()
            ),
            evaluation_splits=("test",),
            few_shots_split="test",
            hf_avail_splits=("test",),
            metrics=[LogLikelihoodAccMetric(normalization=LogProbTokenNorm())],
        )
    if t.name == "mgsm_custom":
        return LightevalTaskConfig(
            **common,
            prompt_function=mgsm_prompt(lang),
            evaluation_splits=("test",),
            few_shots_split="train",
            few_shots_select="sequential",
            hf_avail_splits=("train", "test"),
            generation_size=generation_size,
            stop_sequence=list(MGSM_STOP),
            metrics=[mgsm_metric(lang)],
        )
    raise ConfigError(f"task {t.name}: not defined for lighteval")


PRIMARY_METRIC = {"global_mmlu_lite": "acc", "mrewardbench_mcf": "acc_norm_token", "mgsm_custom": "extractive_match"}


@contextlib.contextmanager
def injected_data(data: dict[str, dict[str, list[dict[str, Any]]]]) -> Iterator[None]:
    """While active, lighteval loads a task's splits from `data[task name]` instead of a hub, and its task
    registry holds only the custom tasks. Both go through lighteval's overridable static loaders
    (`LightevalTask.download_dataset_worker`, `Registry.load_all_task_configs`): its built-in task files are
    not imported, as some of them download files at import time, which fails offline."""
    import datasets
    from lighteval.tasks.lighteval_task import LightevalTask
    from lighteval.tasks.registry import Registry

    original = LightevalTask.download_dataset_worker
    original_registry = Registry.load_all_task_configs

    def only_custom(custom_tasks: Any = None, load_multilingual: bool = False) -> dict[str, Any]:
        return Registry._extract_configs(Registry.create_custom_tasks_module(custom_tasks))

    def load(task: Any) -> Any:
        splits = data.get(task.name)
        if splits is None:
            raise DataError(f"lighteval task {task.name}: no rows were loaded for it")
        return datasets.DatasetDict({k: datasets.Dataset.from_list(v) for k, v in splits.items() if v})

    LightevalTask.download_dataset_worker = staticmethod(load)  # type: ignore[method-assign]
    Registry.load_all_task_configs = staticmethod(only_custom)  # type: ignore[method-assign]
    try:
        yield
    finally:
        LightevalTask.download_dataset_worker = original  # type: ignore[method-assign]
        Registry.load_all_task_configs = original_registry  # type: ignore[method-assign]


@contextlib.contextmanager
def str_hashing() -> Iterator[None]:
    """lighteval's details logger hashes `str` with xxhash, which xxhash 4 accepts only as bytes: the
    lock's xxhash (datasets') is newer than lighteval's code. Encode while lighteval logs details."""
    import xxhash
    from lighteval.logging import info_loggers

    def xxh64(data: Any = b"", *args: Any, **kwargs: Any) -> Any:
        return xxhash.xxh64(data.encode() if isinstance(data, str) else data, *args, **kwargs)

    original = info_loggers.xxhash
    info_loggers.xxhash = types.SimpleNamespace(xxh64=xxh64)  # type: ignore[assignment]
    try:
        yield
    finally:
        info_loggers.xxhash = original


def tasks_module(configs: list[Any]) -> types.ModuleType:
    """lighteval reads custom tasks from a module's TASKS_TABLE; this one is built in memory."""
    module = types.ModuleType("polyglot_lighteval_tasks")
    module.TASKS_TABLE = configs  # type: ignore[attr-defined]
    return module


def task_spec(t: TaskDef, lang: str) -> str:
    return f"{task_name(t, lang)}|{t.shots}"


def build_pipeline(
    pairs: list[tuple[TaskDef, str]],
    data: dict[str, dict[str, list[dict[str, Any]]]],
    model: Any,
    model_config: Any,
    seed: int,
    max_samples: int | None = None,
    output_dir: str | None = None,
    generation_size: int = MGSM_GENERATION_SIZE,
) -> Any:
    """lighteval's Pipeline over the given tasks, with the data injected and the given model/config.
    Building it formats every document (lighteval's prompt functions, few-shot sampler); `run` scores."""
    from lighteval.logging.evaluation_tracker import EvaluationTracker
    from lighteval.pipeline import ParallelismManager, Pipeline, PipelineParameters

    configs = [task_config(t, lang, seed, generation_size) for t, lang in pairs]
    params = PipelineParameters(
        launcher_type=ParallelismManager.NONE,
        custom_tasks_directory=tasks_module(configs),  # type: ignore[arg-type]
        max_samples=max_samples,
    )
    tracker = EvaluationTracker(output_dir=output_dir or tempfile.mkdtemp(prefix="lighteval-"), save_details=False)
    with injected_data(data):
        return Pipeline(
            tasks=",".join(task_spec(t, lang) for t, lang in pairs),
            pipeline_parameters=params,
            evaluation_tracker=tracker,
            model_config=model_config,
            model=model,
        )


def run(pipeline: Any) -> None:
    with str_hashing():
        pipeline.evaluate()


def per_item_results(pipeline: Any, t: TaskDef, lang: str) -> list[dict[str, Any]]:
    """lighteval's per-document results for one task, in the data file's order."""
    details = pipeline.evaluation_tracker.details_logger.details
    key = task_spec(t, lang)
    rows = []
    for d in details[key]:
        doc = d.doc
        rows.append(
            {
                "doc_id": int(doc.id),
                "query": doc.query,
                "choices": list(doc.choices),
                "gold_index": doc.gold_index,
                "response": list(d.model_response.text) if d.model_response.text else None,
                "logprobs": list(d.model_response.logprobs) if d.model_response.logprobs else None,
                "metrics": dict(d.metric),
            }
        )
    rows.sort(key=lambda r: r["doc_id"])
    return rows


def subset_of(row: dict[str, Any]) -> str:
    return mrb_subset(row)
