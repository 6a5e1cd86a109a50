"""The evaluator's task definitions and metrics, checked against hand-computed values with a scripted
model (an lm-eval `LM` whose answers the test decides), then a real run on the small model."""

import json
import os
import subprocess
import sys

import pytest
from lm_eval.api.model import LM

from polyglot_jobs.evaluator import EvalConfig, evaluate

# The scripted model "knows" these answers and gets every other item wrong, on purpose.
KNOWN_GMMLU = {  # de items 1-4 of 6 (gold C, A, B, D); items 5 and 6 answered wrongly
    "Welche Zahl ist eine Primzahl?": "C",
    "Was ist die Hauptstadt von Österreich?": "A",
    "Wie viele Seiten hat ein Sechseck?": "B",
    "Welches Gas atmen Pflanzen bei der Photosynthese hauptsächlich ein?": "D",
}
KNOWN_MRB = {"Nenne drei Farben.", "Was ist die Hauptstadt von Frankreich?", "Übersetze 'Hund' ins Englische.", "Was ist 6 + 7?"}
MGSM_REPLIES = {  # gold 36, 15, 27, 5
    "Ein Regal hat 4 Bretter mit je 9 Büchern. Wie viele Bücher sind es?": " 36 Bücher.",
    "Max hat 50 Cent und gibt 35 Cent aus. Wie viele Cent bleiben?": " Es bleiben 15.",
    "Eine Klasse hat 14 Mädchen und 13 Jungen. Wie viele Kinder sind es?": " 26",
    "Ein Kuchen kostet 2,5 Euro. Was kosten 2 Kuchen?": " 5,0 Euro",
}


class ScriptedLM(LM):
    def __init__(self, bench: str):
        super().__init__()
        with open(os.path.join(bench, "mrewardbench", "de", "test.jsonl")) as f:
            self.chosen = {d["prompt"]: d["chosen"] for d in map(json.loads, f)}
        self.prompts = []

    def wanted(self, context: str) -> str:
        if "[Question]" in context:
            prompt = context.split("[Question]\n", 1)[1].split("\n\n[Answer A]", 1)[0]
            a = context.split("[Answer A]\n", 1)[1].split("\n\n[Answer B]", 1)[0]
            right = "A" if a == self.chosen[prompt] else "B"
            return right if prompt in KNOWN_MRB else ("B" if right == "A" else "A")
        question = context.split("\n", 1)[0]
        gold = {"Wie viele Seiten hat ein Sechseck?": "B"}.get(question)
        if question in KNOWN_GMMLU:
            return KNOWN_GMMLU[question]
        # wrong on purpose: gold is A (item 5) or B (item 6); answer D
        return "D" if gold is None else gold

    def loglikelihood(self, requests):
        out = []
        for r in requests:
            context, continuation = r.args
            self.prompts.append(context)
            out.append((0.0 if continuation.strip() == self.wanted(context) else -5.0, False))
        return out

    def generate_until(self, requests):
        out = []
        for r in requests:
            context = r.args[0]
            self.prompts.append(context)
            question = context.rstrip().split("\n")[-2]
            out.append(MGSM_REPLIES[question])
        return out

    def loglikelihood_rolling(self, requests):
        raise NotImplementedError


def test_scores_equal_hand_computed_values(bench):
    lm = ScriptedLM(bench)
    ev = evaluate(lm, EvalConfig(suite="pg-v1", languages=["de"], temperature=0.0), bench)
    s = ev["scores"]
    assert s["global_mmlu_lite:de"]["value"] == pytest.approx(4 / 6)
    assert s["global_mmlu_lite:de"]["n"] == 6
    # M-RewardBench weighted accuracy, right on alpacaeval-easy, alpacaeval-hard, llmbar-natural, math-prm:
    # chat (79 + 76) / (79 + 76 + 38); chat_hard 76 / (76 + 124); reasoning 1; safety 0.
    chat, chat_hard = 155 / 193, 76 / 200
    assert s["mrewardbench_mcf:de"]["categories"] == pytest.approx(
        {"chat": chat, "chat_hard": chat_hard, "reasoning": 1.0, "safety": 0.0}
    )
    assert s["mrewardbench_mcf:de"]["value"] == pytest.approx((chat + chat_hard + 1.0 + 0.0) / 4)
    assert s["mgsm_custom:de"]["value"] == pytest.approx(3 / 4)
    assert s["global_mmlu_lite:de"]["stderr"] == pytest.approx((4 / 6 * 2 / 6 / 5) ** 0.5)
    assert ev["per_language"]["de"]["score"] == pytest.approx((4 / 6 + (chat + chat_hard + 1) / 4 + 3 / 4) / 3)
    # MGSM is 5-shot from train, in order, with the native instruction.
    mgsm = [p for p in lm.prompts if "Antworte nur mit der Zahl" in p]
    assert mgsm and all(p.index("Anna hat 3 Äpfel") < p.index("Lisa spart 12 Euro") for p in mgsm)
    assert all(p.count("Antworte nur mit der Zahl") == 6 for p in mgsm)
    # Per-sample records name the subset and where the chosen answer was shown.
    mrb = ev["samples"]["mrewardbench_mcf:de"]
    assert {r["subset"] for r in mrb} >= {"math-prm", "refusals-dangerous"}
    assert {r["chosen_is"] for r in mrb} <= {"A", "B"}


def test_limit_and_missing_language_data(bench, tmp_path):
    ev = evaluate(ScriptedLM(bench), EvalConfig(suite="pg-v1", languages=["de"], tasks=["global_mmlu_lite"], limit=2), bench)
    assert ev["scores"]["global_mmlu_lite:de"]["n"] == 2
    from polyglot_jobs.contract import DataError

    with pytest.raises(DataError, match="ar/test.jsonl: not found"):
        # A data root without the language's files (the fixtures now hold every suite language).
        evaluate(ScriptedLM(bench), EvalConfig(suite="pg-v1", languages=["ar"]), str(tmp_path))


def run_job(module: str, out: str, inputs: dict, config: dict) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "POLYGLOT_OUTPUT_URI": out,
        "POLYGLOT_INPUTS": json.dumps(inputs),
        "POLYGLOT_JOB_CONFIG": json.dumps(config),
    }
    return subprocess.run([sys.executable, "-m", module], env=env, capture_output=True, text=True, timeout=900)


def test_real_model_run_writes_samples_scores_and_result(small_model, bench, tmp_path):
    out = str(tmp_path / "eval")
    p = run_job(
        "polyglot_jobs.evaluator",
        out,
        {"data": bench},
        {"model": small_model, "languages": ["de", "es"], "limit": 3, "temperature": 0, "maxNewTokens": 8},
    )
    assert p.returncode == 0, p.stderr[-3000:]
    result = json.loads(open(os.path.join(out, "result.json")).read())
    assert result["status"] == "succeeded"
    m = result["metrics"]
    for lang in ("de", "es"):
        for task in ("global_mmlu_lite", "mrewardbench_mcf", "mgsm_custom"):
            assert 0.0 <= m[f"{task}:{lang}"] <= 1.0
            assert m[f"{task}:{lang}:n"] == 3
        assert m[f"score:{lang}"] == pytest.approx(
            (m[f"global_mmlu_lite:{lang}"] + m[f"mrewardbench_mcf:{lang}"] + m[f"mgsm_custom:{lang}"]) / 3
        )
    samples = open(os.path.join(out, "samples", "mgsm_custom_de.jsonl")).read().splitlines()
    assert len(samples) == 3 and "response" in json.loads(samples[0])
    scores = json.loads(open(os.path.join(out, "scores.json")).read())
    # The default suite ran on lighteval: its per-item records carry lighteval's request and metric.
    assert scores["suite"] == "lighteval-v1" and scores["harness"] == "lighteval" and len(scores["suite_digest"]) == 16
    mgsm = [json.loads(x) for x in samples]
    assert all(r["query"].endswith("Antworte nur mit der Zahl.\nAnswer:") and "extractive_match" in r["metrics"] for r in mgsm)
    mrb = [json.loads(x) for x in open(os.path.join(out, "samples", "mrewardbench_mcf_es.jsonl"))]
    assert all(r["choices"] == [" A", " B"] and len(r["logprobs"]) == 2 and r["subset"] for r in mrb)


def test_bad_config_exits_2_with_reason(tmp_path, bench):
    out = str(tmp_path / "eval")
    p = run_job("polyglot_jobs.evaluator", out, {"data": bench}, {"model": "x/y", "languages": ["de"], "suite": "nope"})
    assert p.returncode == 2
    assert "unknown suite 'nope'" in p.stderr
    assert not os.path.exists(os.path.join(out, "result.json"))
    failure = json.loads(open(os.path.join(out, "failures", "attempt-0.json")).read())
    assert "unknown suite" in failure["reason"]


class ScriptedLightevalModel:
    """A lighteval model (DummyModel's plumbing) whose answers the test decides, for the default suite:
    right on the known items, wrong on every other one."""

    def __new__(cls, tmp_path, small_model):
        from lighteval.models.dummy.dummy_model import DummyModel, DummyModelConfig
        from lighteval.models.model_output import ModelResponse
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(small_model)

        class Model(DummyModel):
            @property
            def tokenizer(self):
                return tok

            def loglikelihood(self, docs):
                out = []
                for d in docs:
                    gold = d.gold_index[0] if isinstance(d.gold_index, list) else d.gold_index
                    known = any(q in d.query for q in KNOWN_GMMLU) or any(f"user question: {p}" in d.query for p in KNOWN_MRB)
                    pick = gold if known else (gold + 1) % len(d.choices)
                    out.append(ModelResponse(logprobs=[0.0 if i == pick else -5.0 for i in range(len(d.choices))],
                                             argmax_logits_eq_gold=[i == pick for i in range(len(d.choices))],
                                             output_tokens=[[0] for _ in d.choices]))  # one token per letter
                return out

            def greedy_until(self, docs):
                return [ModelResponse(text=[MGSM_REPLIES[d.query.split("\n\n")[-2]]]) for d in docs]

        return Model(DummyModelConfig(model_name="scripted", cache_dir=str(tmp_path / "cache")))


def test_default_suite_scores_equal_hand_computed_values(bench, small_model, tmp_path):
    from polyglot_jobs.evaluator import evaluate_lighteval

    ev = evaluate_lighteval(ScriptedLightevalModel(tmp_path, small_model), None, EvalConfig(languages=["de"], temperature=0.0), bench)
    s = ev["scores"]
    assert s["global_mmlu_lite:de"]["value"] == pytest.approx(4 / 6) and s["global_mmlu_lite:de"]["n"] == 6
    chat, chat_hard = 155 / 193, 76 / 200  # as in the pg-v1 test: same items right, same weights
    assert s["mrewardbench_mcf:de"]["categories"] == pytest.approx(
        {"chat": chat, "chat_hard": chat_hard, "reasoning": 1.0, "safety": 0.0}
    )
    assert s["mrewardbench_mcf:de"]["value"] == pytest.approx((chat + chat_hard + 1.0 + 0.0) / 4)
    # lighteval's extractive_match: "36 Bücher.", "Es bleiben 15.", "5,0 Euro" right; "26" (gold 27) wrong.
    assert s["mgsm_custom:de"]["value"] == pytest.approx(3 / 4)
    assert ev["per_language"]["de"]["score"] == pytest.approx((4 / 6 + (chat + chat_hard + 1) / 4 + 3 / 4) / 3)
    mrb = ev["samples"]["mrewardbench_mcf:de"]
    assert {r["subset"] for r in mrb} >= {"math-prm", "refusals-dangerous"} and {r["chosen_is"] for r in mrb} == {"A", "B"}
    # MGSM prompts carry 5 train examples, in file order, each with the instruction.
    mgsm = ev["samples"]["mgsm_custom:de"]
    assert all(r["query"].endswith("\n\nAntworte nur mit der Zahl.\nAnswer:") for r in mgsm)
