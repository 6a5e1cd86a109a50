"""Training data: a dataset manifest (written by Polyglot's dataset workflow) → rows → the rows of the
balanced per-strategy subsample the sweep chose → chat-formatted text (docs/method.md, "Balanced subsample" and
"Student training")."""

from __future__ import annotations

import hashlib
import json
from typing import Any

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


def read_subsample_ids(uri: str, sha256: str) -> list[str]:
    """The balanced subsample's row ids, computed by the sweep (TypeScript, `src/metrics/subsample.ts`, the one
    implementation of the paper's per-strategy sampling) and stored as a sealed JSON record. The job config
    carries the SHA-256 of the stored bytes: a changed or damaged file is refused, never trained on."""
    store = store_for(uri)
    data = store.get_bytes(uri)
    if data is None:
        raise DataError(f"subsample {uri}: not found; resume the sweep, its student stage writes it again")
    got = hashlib.sha256(data).hexdigest()
    if got != sha256:
        raise DataError(
            f"subsample {uri}: sha256 {got[:12]}…, expected {sha256[:12]}… from the job config; "
            "resume the sweep, its student stage writes it again"
        )
    try:
        record = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataError(f"subsample {uri}: not JSON ({e})") from None
    ids = record.get("ids") if isinstance(record, dict) else None
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise DataError(f"subsample {uri}: no 'ids' list of strings; is it a Polyglot subsample record?")
    return ids


def select_rows(rows: list[dict[str, Any]], ids: list[str], where: str) -> list[dict[str, Any]]:
    """The rows with these ids, in the subsample's order; an id the dataset lacks, or a row without a
    conversation, is an error (the subsample was computed from this dataset's rows)."""
    by_id = {str(r.get("id")): r for r in rows}
    picked = []
    for i in ids:
        row = by_id.get(i)
        if row is None:
            raise DataError(f"subsample {where}: id {i} is not in the dataset")
        if messages_of(row) is None or not row.get("strategy"):
            raise DataError(f"subsample {where}: row {i} has no conversation (messages or prompt+response) or strategy")
        picked.append(row)
    return picked


def to_text(rows: list[dict[str, Any]], tokenizer: Any) -> list[str]:
    """Render each row's messages through the chat template (no generation prompt): one text field,
    trained on in full, prompt included (paper §8)."""
    out = []
    for r in rows:
        msgs = messages_of(r)
        assert msgs is not None
        out.append(tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=False))
    return out
