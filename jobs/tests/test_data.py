from polyglot_jobs.data import balanced_subsample, messages_of


def rows(strategy: str, n: int) -> list[dict]:
    return [{"id": f"{strategy}-{i}", "strategy": strategy, "prompt": f"p{i}", "response": f"r{i}"} for i in range(n)]


def test_equal_quota_per_strategy_in_order_of_first_appearance():
    picked = balanced_subsample(rows("respond", 10) + rows("generate", 10) + rows("translate", 10), 9)
    assert [r["strategy"] for r in picked] == ["respond"] * 3 + ["generate"] * 3 + ["translate"] * 3
    assert len({r["id"] for r in picked}) == 9


def test_short_strategy_gives_all_and_remainder_goes_to_largest_spare_pool():
    # quota ⌊12/3⌋ = 4: translate has 1, so 3 are left over; generate has 10 − 4 = 6 spare, respond 5 − 4 = 1.
    picked = balanced_subsample(rows("generate", 10) + rows("translate", 1) + rows("respond", 5), 12)
    counts = {s: sum(r["strategy"] == s for r in picked) for s in ("generate", "translate", "respond")}
    assert counts == {"generate": 7, "translate": 1, "respond": 4}
    assert len({r["id"] for r in picked}) == 12


def test_seeded_and_rows_with_missing_fields_dropped():
    data = rows("generate", 20) + [{"id": "bad", "strategy": "generate", "prompt": "", "response": "x"}]
    a = balanced_subsample(data, 5, seed=42)
    assert a == balanced_subsample(data, 5, seed=42)
    assert a != balanced_subsample(data, 5, seed=7)
    assert all(r["id"] != "bad" for r in balanced_subsample(data, 21))


def test_messages_fall_back_to_prompt_and_response():
    assert messages_of({"prompt": "a", "response": "b"}) == [
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": "b"},
    ]
    assert messages_of({"prompt": "a", "response": ""}) is None
