import math

import pytest

from polyglot_jobs.contract import ConfigError, DataError
from polyglot_jobs.suites import (
    extract_first_number,
    extractive_match,
    mrb_subset,
    mrb_swapped,
    suite_tasks,
    weighted_accuracy,
)


@pytest.mark.parametrize(
    "text,expected",
    [
        ("36 Bücher.", 36.0),
        ("Es sind 1.234 Bücher", 1234.0),
        ("1,234.50 dollars", 1234.5),
        ("2,5 Liter", 2.5),
        ("das sind −4 Grad", -4.0),
        ("答えは 42 です", 42.0),
        ("keine Zahl", None),
    ],
)
def test_first_number(text, expected):
    assert extract_first_number(text) == expected


def test_extractive_match_uses_first_number_of_first_line_at_precision_2():
    assert extractive_match(" 15 Cent\n20", 15) == 1.0
    assert extractive_match("20 oder 15", 15) == 0.0
    assert extractive_match("5,00", 5) == 1.0
    assert extractive_match("", 5) == 0.0


def test_weighted_accuracy_by_hand():
    # chat: easy (79) right, med (38) wrong → 79/117; reasoning: math-prm right → 1.
    items = [("alpacaeval-easy", 1.0), ("mt-bench-med", 0.0), ("math-prm", 1.0)]
    value, stderr, cats = weighted_accuracy(items)
    assert cats == pytest.approx({"chat": 79 / 117, "reasoning": 1.0})
    assert value == pytest.approx((79 / 117 + 1.0) / 2)
    assert stderr == 0.0  # every subset has p ∈ {0, 1}
    _, se, _ = weighted_accuracy([("math-prm", 1.0), ("math-prm", 0.0)])
    assert se == pytest.approx(math.sqrt(0.25 / 2))


def test_unknown_subset_is_a_data_error():
    with pytest.raises(DataError, match="subset 'nope'"):
        mrb_subset({"id": 1, "subset": "nope"})


def test_order_is_seeded():
    doc = {"id": "x-1", "prompt": "p"}
    assert mrb_swapped(doc, 1) == mrb_swapped(doc, 1)
    assert {mrb_swapped({"id": f"x-{i}", "prompt": "p"}, 1) for i in range(20)} == {True, False}


def test_paper_task_mix_per_language():
    names = lambda lang: sorted(t.name for t, _ in suite_tasks("lighteval-v1", [lang]))  # noqa: E731
    assert names("cs") == ["mrewardbench_mcf"]
    assert names("de") == ["global_mmlu_lite", "mgsm_custom", "mrewardbench_mcf"]
    assert names("ar") == ["global_mmlu_lite", "mrewardbench_mcf"]
    with pytest.raises(ConfigError, match="unknown suite"):
        suite_tasks("pg-v9", ["de"])


def test_registry_default_and_named_suites():
    from polyglot_jobs.suites import DEFAULT_SUITE, SUITES, get_suite, suite_digest

    assert DEFAULT_SUITE == "lighteval-v1" and get_suite(DEFAULT_SUITE).harness == "lighteval"
    assert get_suite("pg-v1").harness == "lm-eval"
    # Both suites measure the paper's task mix; their digests differ (different definitions).
    assert [t.name for t in SUITES["pg-v1"].tasks] == [t.name for t in SUITES["lighteval-v1"].tasks]
    assert suite_digest("pg-v1") != suite_digest("lighteval-v1") and len(suite_digest()) == 16
    with pytest.raises(ConfigError, match="unknown suite 'nope'; known: lighteval-v1, pg-v1"):
        get_suite("nope")
