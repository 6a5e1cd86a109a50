"""The evaluator: runs an evaluation suite (suites.py) on one model with the suite's harness — lighteval
for the default `lighteval-v1` (lighteval_suite.py), lm-evaluation-harness for `pg-v1` — for the languages
asked, and writes per-sample outputs, scores with standard errors and `result.json`.

Inputs: `model` (optional: the trained model's folder URI) and `data` (optional: the benchmark data
root). Config: `EvalConfig` below (camelCase or snake_case). The result's metrics are
`<task>:<lang>` (primary metric), `<task>:<lang>:stderr`, `<task>:<lang>:n` and `score:<lang>`, the
unweighted mean of the language's primary metrics (S in the paper's PGR).
"""

from __future__ import annotations

import json
import math
import os
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from .contract import ConfigError, DataError, JobContext, JobResult, parse_config, run_job
from .storage import join, store_for
from . import lighteval_suite
from .suites import (
    DEFAULT_SUITE,
    MRB_SUBSETS,
    TaskDef,
    extractive_match,
    get_suite,
    gmmlu_target,
    gmmlu_text,
    mgsm_target,
    mgsm_text,
    mrb_subset,
    mrb_target,
    mrb_text,
    suite_digest,
    suite_tasks,
    weighted_accuracy,
)


@dataclass
class EvalConfig:
    model: str = ""
    suite: str = DEFAULT_SUITE
    languages: list[str] = field(default_factory=list)
    tasks: list[str] = field(default_factory=list)
    data_uri: str = ""
    limit: int | None = None
    batch_size: int = 8
    max_length: int = 8192
    max_new_tokens: int = 50  # MGSM's answer budget (the paper's generation size)
    temperature: float = 0.6
    top_p: float = 0.95
    seed: int = 1234
    dtype: str = "auto"

    def validate(self) -> None:
        if not self.languages:
            raise ConfigError("POLYGLOT_JOB_CONFIG.languages: give at least one language, e.g. ['de']")
        if self.limit is not None and self.limit < 1:
            raise ConfigError("POLYGLOT_JOB_CONFIG.limit: must be ≥ 1 (or omitted for every item)")
        # Checked before any model is loaded: a wrong suite or language fails in a second, not after a download.
        if not suite_tasks(self.suite, self.languages, self.tasks or None):
            raise ConfigError(
                f"POLYGLOT_JOB_CONFIG.languages: suite {self.suite} has no task for {', '.join(self.languages)}"
            )


def _load_rows(data_root: str, benchmark: str, lang: str, split: str, required: bool = True) -> list[dict[str, Any]]:
    uri = join(data_root, benchmark, lang, f"{split}.jsonl")
    text = store_for(uri).get_text(uri)
    if text is None:
        if required:
            raise DataError(f"benchmark data {uri}: not found; mirror the dataset there (see suites.py)")
        return []
    rows = []
    for n, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise DataError(f"{uri} line {n}: not JSON ({e.msg})") from None
    if required and not rows:
        raise DataError(f"benchmark data {uri}: empty")
    return rows


def build_task(t: TaskDef, lang: str, data_root: str, cfg: EvalConfig) -> Any:
    """An lm-eval ConfigurableTask for (task, language), reading its rows through Polyglot's storage."""
    import datasets
    from lm_eval.api.task import ConfigurableTask

    test = _load_rows(data_root, t.benchmark, lang, "test")
    if cfg.limit is not None:
        test = test[: cfg.limit]
    splits = {"test": test}
    seed = cfg.seed
    common: dict[str, Any] = {
        "task": f"{t.name}:{lang}",
        "custom_dataset": lambda **_: datasets.DatasetDict(
            {k: datasets.Dataset.from_list(v) for k, v in splits.items() if v}
        ),
        "test_split": "test",
        "num_fewshot": t.shots,
        "metadata": {"version": 1},
    }
    if t.name == "global_mmlu_lite":
        for d in test:
            gmmlu_target(d)  # validate every answer before the model runs
        return ConfigurableTask(
            config={
                **common,
                "output_type": "multiple_choice",
                "doc_to_text": lambda d: gmmlu_text(d, lang),
                "doc_to_choice": lambda d: ["A", "B", "C", "D"],
                "doc_to_target": gmmlu_target,
                "metric_list": [{"metric": "acc", "aggregation": "mean", "higher_is_better": True}],
            }
        )
    if t.name == "mrewardbench_mcf":
        for d in test:
            mrb_subset(d)
        return ConfigurableTask(
            config={
                **common,
                "output_type": "multiple_choice",
                "doc_to_text": lambda d: mrb_text(d, seed),
                "doc_to_choice": lambda d: ["A", "B"],
                "doc_to_target": lambda d: mrb_target(d, seed),
                "metric_list": [{"metric": "acc", "aggregation": "mean", "higher_is_better": True}],
            }
        )
    if t.name == "mgsm_custom":
        train = _load_rows(data_root, t.benchmark, lang, "train", required=t.shots > 0)
        if len(train) < t.shots:
            raise DataError(f"mgsm/{lang}/train.jsonl: {len(train)} rows, the {t.shots}-shot prompt needs {t.shots}")
        splits["train"] = train
        gen: dict[str, Any] = {"until": ["\n"], "max_gen_toks": cfg.max_new_tokens}
        gen.update({"do_sample": True, "temperature": cfg.temperature, "top_p": cfg.top_p} if cfg.temperature > 0 else {"do_sample": False})
        return ConfigurableTask(
            config={
                **common,
                "output_type": "generate_until",
                "fewshot_split": "train",
                # Few-shot examples from train, in order (paper §9).
                "fewshot_config": {"sampler": "first_n"},
                "doc_to_text": lambda d: mgsm_text(d, lang),
                "doc_to_target": mgsm_target,
                "target_delimiter": " ",
                "generation_kwargs": gen,
                "process_results": lambda d, r: {"extractive_match": extractive_match(r[0], d["answer_number"])},
                "metric_list": [{"metric": "extractive_match", "aggregation": "mean", "higher_is_better": True}],
            }
        )
    raise ConfigError(f"task {t.name}: no builder")


def evaluate(lm: Any, cfg: EvalConfig, data_root: str) -> dict[str, Any]:
    """Run the suite on an lm-eval `LM`; returns scores and per-sample records (no I/O besides reading data)."""
    from lm_eval import simple_evaluate

    cfg.validate()
    if get_suite(cfg.suite).harness != "lm-eval":
        raise ConfigError(f"POLYGLOT_JOB_CONFIG.suite: {cfg.suite} runs on lighteval; use evaluate_lighteval")
    pairs = suite_tasks(cfg.suite, cfg.languages, cfg.tasks or None)
    tasks = [build_task(t, lang, data_root, cfg) for t, lang in pairs]
    out = simple_evaluate(
        model=lm,
        tasks=tasks,
        log_samples=True,
        bootstrap_iters=1000,
        random_seed=cfg.seed,
        numpy_random_seed=cfg.seed,
        torch_random_seed=cfg.seed,
        fewshot_random_seed=cfg.seed,
        verbosity="WARNING",
    )
    assert out is not None
    per_task: dict[str, tuple[list[dict[str, Any]], dict[str, Any]]] = {}
    for t, lang in pairs:
        name = f"{t.name}:{lang}"
        res = out["results"][name]
        recs = out["samples"][name]
        rows = []
        for s in recs:
            row = {
                "doc_id": s["doc_id"],
                "id": s["doc"].get("id"),
                "target": s["target"],
                "response": s.get("filtered_resps"),
                "metrics": {m: s[m] for m in ("acc", "extractive_match") if m in s},
            }
            if t.name == "mrewardbench_mcf":
                row["subset"] = mrb_subset(s["doc"])
                row["chosen_is"] = "B" if mrb_target(s["doc"], cfg.seed) == 1 else "A"
            rows.append(row)
        m = "acc" if t.name != "mgsm_custom" else "extractive_match"
        per_task[name] = (rows, {"metric": m, "value": res.get(f"{m},none"), "stderr": res.get(f"{m}_stderr,none")})
    return summarize(pairs, per_task, cfg, "acc")


def summarize(
    pairs: list[tuple[TaskDef, str]],
    per_task: dict[str, tuple[list[dict[str, Any]], dict[str, Any]]],
    cfg: EvalConfig,
    mrb_metric: str,
) -> dict[str, Any]:
    """Scores per (task, language) from per-sample rows and the harness's aggregates; M-RewardBench's
    weighted accuracy from the per-item correctness (`mrb_metric`) and each item's subset."""
    scores: dict[str, dict[str, Any]] = {}
    samples: dict[str, list[dict[str, Any]]] = {}
    for t, lang in pairs:
        name = f"{t.name}:{lang}"
        rows, agg = per_task[name]
        samples[name] = rows
        if t.name == "mrewardbench_mcf":
            value, stderr, per_cat = weighted_accuracy([(r["subset"], float(r["metrics"][mrb_metric])) for r in rows])
            entry = {"metric": "weighted_acc", "value": value, "stderr": stderr, "n": len(rows), "categories": per_cat}
        else:
            entry = {**agg, "n": len(rows)}
        scores[name] = {"task": t.name, "language": lang, **entry}
    per_language: dict[str, dict[str, Any]] = {}
    for lang in cfg.languages:
        vals = [s["value"] for s in scores.values() if s["language"] == lang and not math.isnan(s["value"])]
        if vals:
            per_language[lang] = {
                "score": sum(vals) / len(vals),
                "tasks": sorted(s["task"] for s in scores.values() if s["language"] == lang),
            }
    return {"scores": scores, "per_language": per_language, "samples": samples}


def evaluate_lighteval(model: Any, model_config: Any, cfg: EvalConfig, data_root: str) -> dict[str, Any]:
    """Run a lighteval suite: lighteval formats every request, runs the model (its TransformersModel, or
    the `model` given, e.g. a test double implementing lighteval's model API) and scores each item."""
    cfg.validate()
    if get_suite(cfg.suite).harness != "lighteval":
        raise ConfigError(f"POLYGLOT_JOB_CONFIG.suite: {cfg.suite} runs on lm-eval; use evaluate")
    pairs = suite_tasks(cfg.suite, cfg.languages, cfg.tasks or None)
    data: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for t, lang in pairs:
        test = _load_rows(data_root, t.benchmark, lang, "test")
        if cfg.limit is not None:
            test = test[: cfg.limit]  # the first rows, as pg-v1 does (lighteval's own limit samples at random)
        splits = {"test": test}
        if t.name == "global_mmlu_lite":
            for d in test:
                lighteval_suite.gmmlu_input(d)  # validate every answer before the model runs
        if t.name == "mrewardbench_mcf":
            for d in test:
                mrb_subset(d)
        if t.shots > 0:
            train = _load_rows(data_root, t.benchmark, lang, "train")
            if len(train) < t.shots:
                raise DataError(f"{t.benchmark}/{lang}/train.jsonl: {len(train)} rows, the {t.shots}-shot prompt needs {t.shots}")
            splits["train"] = train
        if t.name == "mgsm_custom":
            # The gold is the text of the row's own number (the paper's str(answer_number)). Kept as text here:
            # a table with both 5 and 2.5 would otherwise turn every gold into a float ("5.0").
            splits = {k: [{**r, "answer_number": str(r["answer_number"])} for r in v] for k, v in splits.items()}
        data[lighteval_suite.task_name(t, lang)] = splits
    pipeline = lighteval_suite.build_pipeline(
        pairs, data, model, model_config, cfg.seed, generation_size=cfg.max_new_tokens
    )
    lighteval_suite.run(pipeline)
    results = pipeline.get_results()["results"]
    per_task: dict[str, tuple[list[dict[str, Any]], dict[str, Any]]] = {}
    for t, lang in pairs:
        name = lighteval_suite.task_name(t, lang)
        test = data[name]["test"]
        m = lighteval_suite.PRIMARY_METRIC[t.name]
        rows = []
        for item in lighteval_suite.per_item_results(pipeline, t, lang):
            doc = test[item["doc_id"]]
            row = {"id": doc.get("id", doc.get("sample_id")), **item}
            if t.name == "mrewardbench_mcf":
                row["subset"] = mrb_subset(doc)
                row["chosen_is"] = "B" if item["gold_index"] in (1, [1]) else "A"
            rows.append(row)
        res = results.get(f"{name}|{t.shots}") or results.get(f"{name}:{t.shots}") or {}
        per_task[name] = (rows, {"metric": m, "value": float(res[m]), "stderr": float(res.get(f"{m}_stderr", math.nan))})
    return summarize(pairs, per_task, cfg, lighteval_suite.PRIMARY_METRIC["mrewardbench_mcf"])


def _dtype(name: str) -> Any:
    import torch

    if name == "auto":
        if torch.cuda.is_available():
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    return getattr(torch, name)


def run(ctx: JobContext) -> JobResult:
    import torch
    from lm_eval.models.huggingface import HFLM

    from .models import load_model, load_tokenizer, materialize, parse_model_ref

    cfg = parse_config(EvalConfig, ctx.config)
    model_ref = ctx.inputs.get("model") or cfg.model
    if not model_ref:
        raise ConfigError("POLYGLOT_JOB_CONFIG.model: give the model reference (or the job input 'model')")
    data_root = ctx.inputs.get("data") or cfg.data_uri
    if not data_root:
        raise ConfigError("POLYGLOT_JOB_CONFIG.dataUri: give the benchmark data root (or the job input 'data')")
    cfg.validate()
    started = time.time()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = load_model(model_ref, dtype=_dtype(cfg.dtype)).to(device).eval()
    if get_suite(cfg.suite).harness == "lighteval":
        from lighteval.models.model_input import GenerationParameters
        from lighteval.models.transformers.transformers_model import TransformersModelConfig

        where, extra = materialize(parse_model_ref(model_ref))
        if "gguf_file" in extra:
            # lighteval loads the tokenizer from the folder by name; a bare GGUF file has none to offer.
            raise ConfigError(
                f"POLYGLOT_JOB_CONFIG.model: {model_ref} is a GGUF file; suite {cfg.suite} needs a transformers "
                "folder (convert it with polyglot-convert-model) or use suite pg-v1"
            )
        # The tokenizer and chat template come from the model folder; lighteval applies the chat template
        # when the tokenizer has one (its default, as in the paper's runs).
        model_config = TransformersModelConfig(
            model_name=where,
            revision=extra.get("revision", "main"),
            batch_size=cfg.batch_size,
            max_length=cfg.max_length,
            device=device,
            generation_parameters=GenerationParameters(temperature=cfg.temperature, top_p=cfg.top_p, seed=cfg.seed),
            # A fresh cache per run: lighteval caches outputs by model path and config, and a path may be reused.
            cache_dir=tempfile.mkdtemp(prefix="lighteval-cache-"),
        )
        # lighteval's transformers back end passes temperature/top-p to generate() but sets do_sample only to
        # turn it off at temperature 0, and seeds nothing: sample as the paper's vLLM runs did, from a seed.
        model.generation_config.do_sample = cfg.temperature > 0
        torch.manual_seed(cfg.seed)
        ev = evaluate_lighteval(model, model_config, cfg, data_root)
    else:
        tok = load_tokenizer(model_ref)
        lm = HFLM(pretrained=model, tokenizer=tok, batch_size=cfg.batch_size, max_length=cfg.max_length, device=device)
        ev = evaluate(lm, cfg, data_root)

    store = ctx.store
    outputs: dict[str, str] = {}
    for name, rows in ev["samples"].items():
        uri = ctx.out("samples", f"{name.replace(':', '_')}.jsonl")
        store.put_bytes(uri, "".join(json.dumps(r, ensure_ascii=False, default=str) + "\n" for r in rows).encode())
    outputs["samples"] = ctx.out("samples") + "/"
    report = {
        "model": model_ref,
        "suite": cfg.suite,
        "suite_digest": suite_digest(cfg.suite),
        "harness": get_suite(cfg.suite).harness,
        "config": asdict(cfg),
        "data": data_root,
        "scores": ev["scores"],
        "per_language": ev["per_language"],
        "wall_s": time.time() - started,
        "mrewardbench_subset_sizes": {k: v[1] for k, v in MRB_SUBSETS.items()},
    }
    store.put_json(ctx.out("scores.json"), json.loads(json.dumps(report, default=str)))
    outputs["scores"] = ctx.out("scores.json")
    metrics: dict[str, float] = {}
    for name, s in ev["scores"].items():
        metrics[name] = s["value"]
        if s.get("stderr") is not None:
            metrics[f"{name}:stderr"] = s["stderr"]
        metrics[f"{name}:n"] = s["n"]
    for lang, p in ev["per_language"].items():
        metrics[f"score:{lang}"] = p["score"]
    return JobResult(outputs=outputs, metrics=metrics)


def main() -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(run_job("eval", run))


if __name__ == "__main__":
    main()
