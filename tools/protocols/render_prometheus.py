"""Render the Prometheus absolute-grading texts into `generated/prometheus-eval.json`.

The rubric judge's default template sends exactly what prometheus-eval's `PrometheusEval.absolute_grade`
sends to a chat API; the worker reads the texts from this file instead of a retyped copy. Only
`prometheus_eval/prompts.py` is loaded, by file path: the package's `__init__` imports the judge, which
pulls LiteLLM, vLLM and FastChat clients the protocol venv does not install (--no-deps), while
prompts.py imports nothing at all (checked below, so a release that changes this fails here, not later).
"""

from __future__ import annotations

import ast
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import pathlib
import sys
from types import ModuleType

PACKAGE = "prometheus-eval"
OUT_NAME = "prometheus-eval.json"
# The texts the worker needs; a missing one is an error naming it.
TEXTS = ("ABS_SYSTEM_PROMPT", "ABSOLUTE_PROMPT_WO_REF", "SCORE_RUBRIC_TEMPLATE")


def package_file(relative: str) -> pathlib.Path:
    """A file of the installed distribution, found through its metadata (never through an import)."""
    dist = importlib.metadata.distribution(PACKAGE)
    for f in dist.files or []:
        if str(f) == relative:
            return pathlib.Path(str(dist.locate_file(f)))
    raise FileNotFoundError(f"{PACKAGE} {dist.version} has no {relative}")


def load_by_path(relative: str, name: str) -> ModuleType:
    """Execute one module file of the package on its own, without its package's `__init__`."""
    path = package_file(relative)
    tree = ast.parse(path.read_text(encoding="utf-8"))
    imports = [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))]
    allowed = {"re"}  # standard-library modules a text module may import and still load on its own
    for node in imports:
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
        if isinstance(node, ast.ImportFrom) and node.level:
            raise ImportError(f"{path} imports from its package; it cannot be loaded by path")
        bad = [n for n in names if n.split(".")[0] not in allowed]
        if bad:
            raise ImportError(
                f"{path} imports {bad}; a module loaded without its dependencies may import only {sorted(allowed)}"
            )
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def render(out_dir: pathlib.Path) -> list[str]:
    prompts = load_by_path("prometheus_eval/prompts.py", "_polyglot_prometheus_prompts")
    texts: dict[str, str] = {}
    for name in TEXTS:
        value = getattr(prompts, name, None)
        if not isinstance(value, str):
            raise AttributeError(f"{PACKAGE}'s prompts.py has no text {name}")
        texts[name] = value
    doc = {
        "package": PACKAGE,
        "version": importlib.metadata.version(PACKAGE),
        "texts": texts,
        "sha256": {name: sha256(value) for name, value in texts.items()},
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / OUT_NAME
    tmp = out_dir / f".{OUT_NAME}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(doc, ensure_ascii=False, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, target)
    return [OUT_NAME]


if __name__ == "__main__":
    print(render(pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "generated")))
