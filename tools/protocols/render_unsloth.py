"""The chat templates the paper's student trainer applied, taken from the installed `unsloth` package.

The paper's trainer called `unsloth.chat_templates.get_chat_template(tokenizer, chat_template=name)` and then
`tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=False)`. The text a student is
trained on therefore depends on two things the package owns: the template string registered under `name` in
`CHAT_TEMPLATES`, and what `get_chat_template` does to it before setting it on the tokenizer. Importing
`unsloth` needs a GPU, so this module never imports it; it reads `unsloth/chat_templates.py` as source:

1. The template strings, each name's stop word and eos-mapping flag, and `DEFAULT_SYSTEM_MESSAGE`, are
   evaluated from the module's top-level assignments with `ast` (string literals, `+` of strings, tuples
   and names bound earlier; anything else, such as the Ollama modelfiles, is left out).
2. The package's own `_escape_jinja_literal` and `_change_system_message` are compiled from that source and
   run, exactly as `get_chat_template` runs them last: for `llama-3.1` this fills the `{system_message}`
   placeholder of the system block with the template's default (an empty string).
3. The one other step of `get_chat_template` that can change the text is "Gemma tokenizers need a BOS":
   a template for a Gemma tokenizer that does not start with `{{ bos_token }}` gets it prepended. It is
   applied to the `gemma-*` templates here (the paper used `gemma-3` only with Gemma students).
   Its default role/content `mapping` adds nothing, and its eos mapping changes the tokenizer's
   vocabulary, not the text (recorded in the index as `map_eos_token`).

Output: `chat-templates/<name>.jinja` (UTF-8, the template string exactly) and `chat-templates/index.json`
(package version, the source file's sha256, and per template its file, sha256, stop word and flags).
The trainer reads these files (jobs/polyglot_jobs/models.py); jobs/tests/test_chat_templates.py proves
that what it renders equals what the package's own `get_chat_template` renders.
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
from typing import Any

PACKAGE = "unsloth"
SOURCE = "chat_templates.py"
FOLDER = "chat-templates"
INDEX = "index.json"
# The paper's templates (llama-3.1 for OLMo 3, gemma-3 for Gemma) and ChatML, which unsloth also defines.
NAMES = ("llama-3.1", "gemma-3", "chatml")
# get_chat_template's Gemma step: these prefixes count as "already starts with a BOS".
GEMMA_BOS = ("{{ bos_token }}", "{{- bos_token }}")

_UNKNOWN = object()  # a value this module does not evaluate (a call, an f-string, ...)


def package_dir() -> pathlib.Path:
    """The installed package's folder, found without importing it (its __init__ needs a GPU)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"[protocols] {PACKAGE} is not installed; run `bash scripts/setup.sh`")
    return pathlib.Path(next(iter(spec.submodule_search_locations)))


def _value(node: ast.AST, names: dict[str, Any]) -> Any:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        return names.get(node.id, _UNKNOWN)
    if isinstance(node, ast.Tuple):
        return tuple(_value(e, names) for e in node.elts)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _value(node.left, names), _value(node.right, names)
        if isinstance(left, str) and isinstance(right, str):
            return left + right
    return _UNKNOWN


def read_registry(tree: ast.Module) -> tuple[dict[str, tuple[Any, ...]], dict[str, Any]]:
    """`CHAT_TEMPLATES` and `DEFAULT_SYSTEM_MESSAGE` as the module builds them at top level, in order."""
    names: dict[str, Any] = {}
    registries: dict[str, dict[str, Any]] = {"CHAT_TEMPLATES": {}, "DEFAULT_SYSTEM_MESSAGE": {}}
    for stmt in tree.body:
        if not isinstance(stmt, ast.Assign) or len(stmt.targets) != 1:
            continue
        target = stmt.targets[0]
        value = _value(stmt.value, names)
        if isinstance(target, ast.Name):
            names[target.id] = value
        elif (
            isinstance(target, ast.Subscript)
            and isinstance(target.value, ast.Name)
            and target.value.id in registries
            and isinstance(target.slice, ast.Constant)
            and isinstance(target.slice.value, str)
        ):
            registries[target.value.id][target.slice.value] = value
    return registries["CHAT_TEMPLATES"], registries["DEFAULT_SYSTEM_MESSAGE"]


class _QuietLogger:
    """Stands in for the package's transformers logger: `_change_system_message` only warns through it."""

    def warning_once(self, *args: object, **kwargs: object) -> None:
        pass


def package_functions(source: str, tree: ast.Module, default_system_message: dict[str, Any]) -> dict[str, Any]:
    """Compile the package's own system-message step from its source, bound to the registry read above."""
    wanted = {"_escape_jinja_literal", "_change_system_message"}
    defs = [s for s in tree.body if isinstance(s, ast.FunctionDef) and s.name in wanted]
    missing = wanted - {d.name for d in defs}
    if missing:
        raise SystemExit(f"[protocols] {PACKAGE}/{SOURCE}: no {', '.join(sorted(missing))}; the pinned version changed")
    namespace: dict[str, Any] = {"DEFAULT_SYSTEM_MESSAGE": default_system_message, "logger": _QuietLogger()}
    module = ast.Module(body=defs, type_ignores=[])
    exec(compile(module, f"{PACKAGE}/{SOURCE}", "exec"), namespace)  # noqa: S102 - the pinned package's own code
    return namespace


def final_template(name: str, templates: dict[str, tuple[Any, ...]], functions: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The template string `get_chat_template(tokenizer, chat_template=name)` leaves on the tokenizer."""
    entry = templates.get(name)
    if not isinstance(entry, tuple) or len(entry) < 3 or not isinstance(entry[0], str):
        raise SystemExit(f"[protocols] {PACKAGE}/{SOURCE}: CHAT_TEMPLATES['{name}'] is not a literal template")
    template, stop_word, map_eos = entry[0], entry[1], entry[2]
    if name.startswith("gemma") and not template.startswith(GEMMA_BOS):
        template = "{{ bos_token }}" + template
    template, system_message = functions["_change_system_message"](template, name.lower(), None)
    meta = {
        "stop_word": stop_word if isinstance(stop_word, str) else None,
        "map_eos_token": bool(map_eos) if isinstance(map_eos, bool) else None,
        "system_message": system_message,
    }
    return template, meta


def _write(path: pathlib.Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def render(out_dir: pathlib.Path) -> list[str]:
    src_path = package_dir() / SOURCE
    raw = src_path.read_bytes()
    source = raw.decode("utf-8")
    tree = ast.parse(source, filename=str(src_path))
    templates, defaults = read_registry(tree)
    functions = package_functions(source, tree, defaults)
    folder = out_dir / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    index: dict[str, Any] = {
        "package": PACKAGE,
        "version": importlib.metadata.version(PACKAGE),
        "source": f"{PACKAGE}/{SOURCE}",
        "source_sha256": hashlib.sha256(raw).hexdigest(),
        "templates": {},
    }
    written: list[str] = []
    for name in NAMES:
        text, meta = final_template(name, templates, functions)
        data = text.encode("utf-8")
        file = f"{name}.jinja"
        _write(folder / file, data)
        index["templates"][name] = {"file": file, "sha256": hashlib.sha256(data).hexdigest(), **meta}
        written.append(f"{FOLDER}/{file}")
    _write(folder / INDEX, (json.dumps(index, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))
    written.append(f"{FOLDER}/{INDEX}")
    return written


if __name__ == "__main__":
    print("\n".join(render(pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "generated"))))
