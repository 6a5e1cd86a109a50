import hashlib
import json
from pathlib import Path

import pytest

from polyglot_jobs.contract import DataError
from polyglot_jobs.data import messages_of, read_subsample_ids, select_rows


def rows(strategy: str, n: int) -> list[dict]:
    return [{"id": f"{strategy}-{i}", "strategy": strategy, "prompt": f"p{i}", "response": f"r{i}"} for i in range(n)]


def stored(tmp_path: Path, record: object) -> tuple[str, str]:
    data = json.dumps(record).encode("utf-8")
    path = tmp_path / "subsample.json"
    path.write_bytes(data)
    return str(path), hashlib.sha256(data).hexdigest()


def test_the_sweeps_ids_select_rows_in_its_order(tmp_path):
    uri, sha = stored(tmp_path, {"ids": ["respond-2", "generate-0", "respond-0"], "integrity": {"sha256": "x"}})
    picked = select_rows(rows("generate", 3) + rows("respond", 3), read_subsample_ids(uri, sha), uri)
    assert [r["id"] for r in picked] == ["respond-2", "generate-0", "respond-0"]


def test_a_subsample_that_does_not_match_its_digest_is_refused(tmp_path):
    uri, sha = stored(tmp_path, {"ids": ["generate-0"]})
    Path(uri).write_text(json.dumps({"ids": ["generate-1"]}))
    with pytest.raises(DataError, match="sha256"):
        read_subsample_ids(uri, sha)
    with pytest.raises(DataError, match="not found"):
        read_subsample_ids(str(tmp_path / "none.json"), sha)


def test_an_id_the_dataset_lacks_or_a_row_without_conversation_is_an_error():
    data = rows("generate", 2) + [{"id": "bad", "strategy": "generate", "prompt": "", "response": "x"}]
    with pytest.raises(DataError, match="id generate-7 is not in the dataset"):
        select_rows(data, ["generate-7"], "s")
    with pytest.raises(DataError, match="row bad has no conversation"):
        select_rows(data, ["bad"], "s")


def test_messages_fall_back_to_prompt_and_response():
    assert messages_of({"prompt": "a", "response": "b"}) == [
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": "b"},
    ]
    assert messages_of({"prompt": "a", "response": ""}) is None
