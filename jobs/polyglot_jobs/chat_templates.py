"""Named chat templates for the trainer: the texts the paper's trainer applied, rendered from the pinned
`unsloth` package at setup (tools/protocols/render_unsloth.py) into `<protocols dir>/chat-templates/`.

They are never typed into this repository: a template is a protocol (the student learns its exact bytes),
so it comes from the package the paper used. The protocols folder is `POLYGLOT_PROTOCOLS_DIR` when set
(the trainer image sets it to the folder its build rendered), else `generated/` at the repository root,
which `bash scripts/setup.sh` fills for a local checkout.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from .contract import ConfigError

ENV = "POLYGLOT_PROTOCOLS_DIR"
# The folder and index names tools/protocols/render_unsloth.py writes (FOLDER, INDEX there).
FOLDER = "chat-templates"
INDEX = "index.json"
SETUP_HINT = "run `bash scripts/setup.sh` (it renders them from the pinned unsloth package)"


def protocols_dir() -> Path:
    given = os.environ.get(ENV)
    return Path(given) if given else Path(__file__).resolve().parents[2] / "generated"


def _index() -> tuple[Path, dict[str, Any]]:
    folder = protocols_dir() / FOLDER
    path = folder / INDEX
    if not path.is_file():
        raise ConfigError(f"chat templates: {path} is missing; {SETUP_HINT}, or point {ENV} at a rendered folder")
    return folder, json.loads(path.read_text(encoding="utf-8"))


def known_templates() -> list[str]:
    return sorted(_index()[1]["templates"])


def chat_template(name: str) -> str:
    """The template text registered under `name`, checked against the sha256 the render step recorded."""
    folder, index = _index()
    entry = index["templates"].get(name)
    if entry is None:
        known = ", ".join(sorted(index["templates"]))
        raise ConfigError(f"chatTemplate '{name}': unknown; use one of {known}, 'model' or a Jinja string")
    path = folder / entry["file"]
    if not path.is_file():
        raise ConfigError(f"chat template '{name}': {path} is missing; {SETUP_HINT}")
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != entry["sha256"]:
        raise ConfigError(f"chat template '{name}': {path} does not match its sha256 in {INDEX}; {SETUP_HINT}")
    return data.decode("utf-8")


def provenance() -> dict[str, Any]:
    """Package and version the named templates came from, for the training summary."""
    index = _index()[1]
    return {"package": index["package"], "version": index["version"], "source_sha256": index["source_sha256"]}
