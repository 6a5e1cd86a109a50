"""Parity: the trainer's training text equals what the paper's trainer rendered with unsloth's chat templates.

The paper's trainer ran `get_chat_template(tokenizer, chat_template=name)` from the `unsloth` package and then
`tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=False)`. Importing `unsloth`
needs a GPU, so these tests load the installed `unsloth/chat_templates.py` (the version pinned in
tools/protocol-requirements.txt, installed into .tools/protocol-venv by scripts/setup.sh) as a module of its own,
under a stand-in parent package that skips `unsloth/__init__.py`, and run the package's real
`get_chat_template` on a real tokenizer. One call inside it is replaced: `patch_tokenizer` (from the
`unsloth_zoo` package, not installed) becomes the identity; it fixes pad tokens and never touches the template.
For chatml, whose entry also swaps the tokenizer's EOS for <|im_end|> (a vocabulary edit through unsloth's GPU
stack that changes token ids, not text), the call passes `map_eos_token=False`.

Each fixture conversation is rendered three ways and all must agree byte for byte:
- the trainer: `load_tokenizer(student, name)` + `data.to_text`, reading the file the render step wrote;
- the paper's path: the package's `get_chat_template` + transformers' `apply_chat_template`;
- plain jinja2 (transformers' settings: trim_blocks, lstrip_blocks) on the package's `CHAT_TEMPLATES[name]`
  after the package's own `_change_system_message`, with the tokenizer's BOS/EOS.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import ROOT
from polyglot_jobs import chat_templates
from polyglot_jobs.contract import ConfigError
from polyglot_jobs.data import to_text
from polyglot_jobs.models import load_tokenizer

NAMES = ("llama-3.1", "gemma-3", "chatml")

# ≥ 8 conversations: with and without a system turn, several scripts, multi-turn, and text that looks like
# Jinja, quotes, backslashes, surrounding whitespace (gemma-3 trims it, llama-3.1 keeps it), emoji, RTL.
CONVERSATIONS: list[list[dict[str, str]]] = [
    [
        {"role": "user", "content": "Erkläre kurz, was 2 plus 2 ergibt."},
        {"role": "assistant", "content": "2 plus 2 ergibt 4."},
    ],
    [
        {"role": "system", "content": "أنت مساعد مفيد يجيب باللغة العربية."},
        {"role": "user", "content": "ما هي عاصمة مصر؟"},
        {"role": "assistant", "content": "عاصمة مصر هي القاهرة."},
    ],
    [
        {"role": "user", "content": "日本の首都はどこですか？"},
        {"role": "assistant", "content": "東京です。"},
        {"role": "user", "content": "人口はどれくらいですか？"},
        {"role": "assistant", "content": "約1400万人です。"},
    ],
    [
        {"role": "system", "content": "Odpovídej česky a stručně."},
        {"role": "user", "content": "Příliš žluťoučký kůň úpěl ďábelské ódy — co to je?"},
        {"role": "assistant", "content": "Pangram: věta obsahující všechna písmena s diakritikou."},
        {"role": "user", "content": "Díky!"},
        {"role": "assistant", "content": "Rádo se stalo."},
    ],
    [
        {"role": "user", "content": "Escribe {{ bos_token }} y {% raw %}{{ x }}{% endraw %} literalmente."},
        {"role": "assistant", "content": "Aquí: {{ bos_token }} y {% raw %}{{ x }}{% endraw %} — sin cambios."},
    ],
    [
        {"role": "user", "content": '  Kutip "ganda" dan \'tunggal\', garis miring \\n dan \\\\ tetap.  \n'},
        {"role": "assistant", "content": "\n\nBaik: \"ganda\", 'tunggal', \\n, \\\\.\t \n"},
    ],
    [
        {"role": "system", "content": "You are terse.\nLine two of the system prompt."},
        {"role": "user", "content": "List three emoji: 🦜🌍✨ and a tab\there."},
        {"role": "assistant", "content": "🦜 🌍 ✨\n- done <|eot_id|> <end_of_turn> <|im_end|> stay text"},
    ],
    [
        {"role": "user", "content": "مرحبا! Hello! こんにちは! Ahoj! Hola! Halo! Hallo!"},
        {"role": "assistant", "content": "Multiscript reply: عربي, 日本語, čeština, español, Indonesia, Deutsch."},
    ],
    [
        {"role": "system", "content": "Antworte auf Deutsch."},
        {"role": "user", "content": "Wie viel ist 1.234,5 + 0,5?"},
        {"role": "assistant", "content": "1.235"},
        {"role": "user", "content": "Und mal zwei?"},
        {"role": "assistant", "content": "2.470"},
        {"role": "user", "content": "Danke."},
        {"role": "assistant", "content": "Gern geschehen!"},
    ],
]


def _pinned_version() -> str:
    text = (ROOT / "tools" / "protocol-requirements.txt").read_text(encoding="utf-8")
    m = re.search(r"^unsloth==(\S+)$", text, re.M)
    assert m, "tools/protocol-requirements.txt pins no unsloth version"
    return m.group(1)


def _installed_package() -> Path:
    """The unsloth package scripts/setup.sh installed, at the pinned version."""
    found = sorted((ROOT / ".tools" / "protocol-venv" / "lib").glob("python*/site-packages/unsloth/chat_templates.py"))
    if not found:
        pytest.fail(".tools/protocol-venv has no unsloth package; run `bash scripts/setup.sh`")
    pkg = found[0].parent
    dist = list(pkg.parent.glob(f"unsloth-{_pinned_version()}.dist-info"))
    assert dist, f"{pkg.parent}: unsloth is not the pinned {_pinned_version()}; run `bash scripts/setup.sh`"
    return pkg


@pytest.fixture(scope="module")
def unsloth() -> Iterator[types.ModuleType]:
    """The installed `unsloth.chat_templates`, executed for real without `unsloth/__init__.py`."""
    import importlib.util

    pkg = _installed_package()
    saved = {k: sys.modules.get(k) for k in ("unsloth", "unsloth.chat_templates", "unsloth_zoo", "unsloth_zoo.tokenizer_utils")}
    parent = types.ModuleType("unsloth")
    parent.__path__ = [str(pkg)]  # relative imports (.ollama_template_mappers, .tokenizers_v1) load the real files
    parent.DEVICE_TYPE = "cpu"  # type: ignore[attr-defined]  # the torch-free branch: no GPU model stack
    zoo = types.ModuleType("unsloth_zoo")
    zoo.__path__ = []
    zoo_tok = types.ModuleType("unsloth_zoo.tokenizer_utils")
    zoo_tok.patch_tokenizer = lambda model, tokenizer: (model, tokenizer)  # type: ignore[attr-defined]
    sys.modules.update({"unsloth": parent, "unsloth_zoo": zoo, "unsloth_zoo.tokenizer_utils": zoo_tok})
    spec = importlib.util.spec_from_file_location("unsloth.chat_templates", pkg / "chat_templates.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["unsloth.chat_templates"] = module
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The setup step's output, rendered afresh with the protocol venv's Python (no stale generated/)."""
    out = tmp_path_factory.mktemp("protocols")
    py = ROOT / ".tools" / "protocol-venv" / "bin" / "python"
    if not py.exists():
        pytest.fail(f"{py}: missing; run `bash scripts/setup.sh`")
    subprocess.run([str(py), str(ROOT / "tools" / "protocols" / "render_unsloth.py"), str(out)], check=True, capture_output=True)
    return out


@pytest.fixture()
def protocols(rendered: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(chat_templates.ENV, str(rendered))
    return rendered


def _paper_tokenizer(unsloth: types.ModuleType, model: str, name: str) -> Any:
    from transformers import AutoTokenizer

    # chatml's entry asks get_chat_template to make <|im_end|> the EOS by editing the vocabulary, through
    # unsloth's tokenizer_utils (GPU stack). That edit changes token ids, never the template or the text, so
    # it is skipped here: map_eos_token=False for the templates that would do it.
    remap_eos = bool(unsloth.CHAT_TEMPLATES[name][2])
    tok = AutoTokenizer.from_pretrained(model)
    return unsloth.get_chat_template(tok, chat_template=name, **({"map_eos_token": False} if remap_eos else {}))


def _jinja(template: str, messages: list[dict[str, str]], bos: str, eos: str) -> str:
    """Plain jinja2 with the environment transformers renders chat templates in."""
    from jinja2.ext import loopcontrols
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str) -> None:
        raise ValueError(message)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.globals["raise_exception"] = raise_exception
    return env.from_string(template).render(messages=messages, bos_token=bos, eos_token=eos, add_generation_prompt=False)


@pytest.mark.parametrize("name", NAMES)
def test_rendered_file_is_the_template_get_chat_template_sets(name: str, unsloth: types.ModuleType, protocols: Path, small_model: str) -> None:
    paper = _paper_tokenizer(unsloth, small_model, name)
    assert chat_templates.chat_template(name) == paper.chat_template
    index = json.loads((protocols / "chat-templates" / "index.json").read_text(encoding="utf-8"))
    assert index["version"] == _pinned_version()
    src = (_installed_package() / "chat_templates.py").read_bytes()
    assert index["source_sha256"] == hashlib.sha256(src).hexdigest()


@pytest.mark.parametrize("name", NAMES)
def test_trainer_text_equals_unsloth_rendering(name: str, unsloth: types.ModuleType, protocols: Path, small_model: str) -> None:
    trainer_tok = load_tokenizer(small_model, name)
    trained = to_text([{"messages": c} for c in CONVERSATIONS], trainer_tok)
    paper_tok = _paper_tokenizer(unsloth, small_model, name)
    # The package's registry entry, through its own system-message step (the last thing get_chat_template does).
    template, _ = unsloth._change_system_message(unsloth.CHAT_TEMPLATES[name][0], name, None)
    compared = matched = 0
    for conv, text in zip(CONVERSATIONS, trained, strict=True):
        paper = paper_tok.apply_chat_template(conv, tokenize=False, add_generation_prompt=False)
        plain = _jinja(template, conv, paper_tok.bos_token, paper_tok.eos_token)
        compared += 1
        assert text == paper, f"{name}: trainer and get_chat_template+apply_chat_template differ for {conv!r}"
        assert text == plain, f"{name}: trainer and plain jinja2 differ for {conv!r}"
        matched += 1
    assert compared == matched == len(CONVERSATIONS) >= 8
    print(f"[parity] chat template {name}: {matched}/{compared} conversations identical")


def test_llama_31_has_unsloth_system_block(protocols: Path, small_model: str) -> None:
    """What the hand-written template lacked: unsloth's llama-3.1 always opens with a system block carrying
    its knowledge/today dates, and the conversation's own system turn goes inside it."""
    tok = load_tokenizer(small_model, "llama-3.1")
    no_system, with_system = to_text([{"messages": CONVERSATIONS[0]}, {"messages": CONVERSATIONS[6]}], tok)
    block = "<|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\nToday Date: 26 July 2024\n\n"
    assert no_system == (
        f"{tok.bos_token}{block}<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nErkläre kurz, was 2 plus 2 ergibt."
        "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n2 plus 2 ergibt 4.<|eot_id|>"
    )
    assert with_system.startswith(f"{tok.bos_token}{block}You are terse.\nLine two of the system prompt.<|eot_id|>")
    assert with_system.count("<|start_header_id|>system") == 1


def test_missing_rendered_templates_name_the_setup_script(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(chat_templates.ENV, str(tmp_path))
    with pytest.raises(ConfigError, match=r"chat-templates/index\.json is missing; run `bash scripts/setup\.sh`"):
        chat_templates.chat_template("llama-3.1")


def test_unknown_and_tampered_templates_are_refused(rendered: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    copy = tmp_path / "protocols"
    shutil.copytree(rendered, copy)
    monkeypatch.setenv(chat_templates.ENV, str(copy))
    with pytest.raises(ConfigError, match=r"chatTemplate 'llama-3': unknown; use one of chatml, gemma-3, llama-3.1"):
        chat_templates.chat_template("llama-3")
    f = copy / "chat-templates" / "gemma-3.jinja"
    f.write_text(f.read_text(encoding="utf-8") + " ", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"does not match its sha256"):
        chat_templates.chat_template("gemma-3")
