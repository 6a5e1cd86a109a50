"""Training data: a dataset manifest (written by Polyglot's dataset workflow) → rows → the paper's
balanced per-strategy subsample → chat-formatted text (docs/method.md, "Balanced subsample" and "Student training")."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from .contract import DataError
from .storage import store_for


def read_manifest_rows(manifest_uri: str) -> list[dict[str, Any]]:
    store = store_for(manifest_uri)
    manifest = store.get_json(manifest_uri)
    if manifest is None:
        raise DataError(f"dataset manifest {manifest_uri}: not found")
    per = manifest.get("perStrategy")
    if not isinstance(per, dict):
        raise DataError(f"dataset manifest {manifest_uri}: no perStrategy; is it a Polyglot dataset manifest?")
    rows: list[dict[str, Any]] = []
    for strategy, info in per.items():
        for shard in info.get("shards", []):
            text = store.get_text(shard)
            if text is None:
                raise DataError(f"dataset shard {shard} (strategy {strategy}): listed in the manifest but missing")
            for n, line in enumerate(text.splitlines(), 1):
                if not line.strip():
                    continue
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise DataError(f"{shard} line {n}: not JSON ({e.msg})") from None
    return rows


def messages_of(row: dict[str, Any]) -> list[dict[str, str]] | None:
    msgs = row.get("messages")
    if isinstance(msgs, list) and msgs and all(isinstance(m, dict) and m.get("content") for m in msgs):
        return [{"role": str(m["role"]), "content": str(m["content"])} for m in msgs]
    p, r = row.get("prompt"), row.get("response")
    if isinstance(p, str) and isinstance(r, str) and p and r:
        return [{"role": "user", "content": p}, {"role": "assistant", "content": r}]
    return None


def balanced_subsample(rows: list[dict[str, Any]], total: int, seed: int = 42, spare_seed: int = 43) -> list[dict[str, Any]]:
    """The reference's `subsample_per_strategy`: drop rows with a missing field, give each of the k
    strategies ⌊total/k⌋ rows (seed 42), then fill the remainder from strategies with spare rows,
    largest spare pool first (seed 43). Strategies in order of first appearance. Sampling follows
    pandas' `DataFrame.sample` (RandomState.choice without replacement) on each strategy's rows."""
    usable = [r for r in rows if messages_of(r) is not None and r.get("strategy")]
    order: list[str] = []
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in usable:
        s = str(r["strategy"])
        if s not in groups:
            order.append(s)
            groups[s] = []
        groups[s].append(r)
    if not order:
        return []
    quota = total // len(order)
    chosen: dict[str, list[int]] = {}
    for s in order:
        n = len(groups[s])
        take = min(quota, n)
        chosen[s] = list(np.random.RandomState(seed).choice(n, size=take, replace=False)) if take < n else list(range(n))
    remainder = total - sum(len(v) for v in chosen.values())
    spare = sorted(order, key=lambda s: -(len(groups[s]) - len(chosen[s])))
    for s in spare:
        if remainder <= 0:
            break
        taken = set(chosen[s])
        left = [i for i in range(len(groups[s])) if i not in taken]
        if not left:
            continue
        take = min(remainder, len(left))
        extra = np.random.RandomState(spare_seed).choice(len(left), size=take, replace=False)
        chosen[s].extend(left[i] for i in extra)
        remainder -= take
    return [groups[s][i] for s in order for i in chosen[s]]


def to_text(rows: list[dict[str, Any]], tokenizer: Any) -> list[str]:
    """Render each row's messages through the chat template (no generation prompt): one text field,
    trained on in full, prompt included (paper §8)."""
    out = []
    for r in rows:
        msgs = messages_of(r)
        assert msgs is not None
        out.append(tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=False))
    return out
