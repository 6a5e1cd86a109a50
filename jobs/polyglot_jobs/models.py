"""Model references, as students and anchors name them in the sweep spec:

- `org/name` or `org/name@revision`: a Hugging Face model (the pod's HF cache or hub, `HF_TOKEN` from a
  Secret). Never fetched in tests (`HF_HUB_OFFLINE=1`).
- `s3://bucket/prefix/`: a model folder in object storage (what `polyglot models import` and the
  trainer write); copied once into a local cache keyed by the URI.
- a local folder, or a local `.gguf` file (de-quantized by transformers).
- `random:<ref>` or `random:<ref>#seed=N`: the architecture and tokenizer of `<ref>` with freshly
  initialised weights. For smoke tests and the CPU demo's chance-level anchor; never a real result.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import chat_templates
from .contract import ConfigError
from .storage import store_for


@dataclass
class ModelRef:
    kind: str  # 'hf' | 's3' | 'local' | 'gguf'
    location: str
    revision: str | None = None
    random_seed: int | None = None
    raw: str = ""


def parse_model_ref(ref: str) -> ModelRef:
    raw = ref
    seed = None
    if ref.startswith("random:"):
        ref, _, frag = ref[len("random:") :].partition("#")
        seed = 0
        if frag:
            if not frag.startswith("seed=") or not frag[5:].isdigit():
                raise ConfigError(f"model '{raw}': write random:<model>#seed=<integer>")
            seed = int(frag[5:])
    if not ref:
        raise ConfigError("model: empty reference; give an HF id, an s3:// folder or a local path")
    if ref.startswith("s3://"):
        return ModelRef("s3", ref.rstrip("/") + "/", random_seed=seed, raw=raw)
    if ref.startswith("file://"):
        ref = ref[len("file://") :]
    if ref.startswith("/") or ref.startswith("."):
        kind = "gguf" if ref.endswith(".gguf") else "local"
        return ModelRef(kind, ref, random_seed=seed, raw=raw)
    name, _, rev = ref.partition("@")
    return ModelRef("hf", name, revision=rev or None, random_seed=seed, raw=raw)


def cache_root() -> Path:
    return Path(os.environ.get("POLYGLOT_MODEL_CACHE", Path.home() / ".cache" / "polyglot" / "models"))


def materialize(ref: ModelRef) -> tuple[str, dict[str, Any]]:
    """Return (path or hub id, extra from_pretrained kwargs) for a reference; copies S3 folders locally."""
    if ref.kind == "s3":
        local = cache_root() / hashlib.sha256(ref.location.encode()).hexdigest()[:24]
        if not (local / "_COMPLETE").exists():
            store = store_for(ref.location)
            if not store.exists(ref.location + "_COMPLETE"):
                raise ConfigError(f"model {ref.location}: no _COMPLETE marker; import or train it first")
            # Into a private folder first, renamed whole: a crash mid-copy never leaves a folder that looks done.
            tmp = local.with_name(f"{local.name}.tmp-{os.getpid()}")
            shutil.rmtree(tmp, ignore_errors=True)
            store.download_dir(ref.location, tmp)
            shutil.rmtree(local, ignore_errors=True)
            os.replace(tmp, local)
        ggufs = sorted(local.glob("*.gguf"))
        if ggufs and not (local / "config.json").exists():
            return str(local), {"gguf_file": ggufs[0].name}
        return str(local), {}
    if ref.kind == "gguf":
        p = Path(ref.location)
        if not p.is_file():
            raise ConfigError(f"model {ref.location}: no such file")
        return str(p.parent), {"gguf_file": p.name}
    if ref.kind == "local":
        p = Path(ref.location)
        if not (p / "config.json").exists():
            raise ConfigError(f"model {ref.location}: not a model folder (no config.json)")
        return str(p), {}
    return ref.location, ({"revision": ref.revision} if ref.revision else {})


def load_tokenizer(ref: str | ModelRef, chat_template: str | None = None):
    from transformers import AutoTokenizer

    r = parse_model_ref(ref) if isinstance(ref, str) else ref
    where, extra = materialize(r)
    tok = AutoTokenizer.from_pretrained(where, **extra)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    if chat_template:
        tok.chat_template = resolve_chat_template(chat_template)
    return tok


def load_model(ref: str | ModelRef, dtype: Any = None, quantization: Any = None, device_map: Any = None):
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    r = parse_model_ref(ref) if isinstance(ref, str) else ref
    where, extra = materialize(r)
    dtype = dtype or torch.float32
    if r.random_seed is not None:
        config = AutoConfig.from_pretrained(where, **extra)
        torch.manual_seed(r.random_seed)
        return AutoModelForCausalLM.from_config(config, dtype=dtype)
    kwargs: dict[str, Any] = {"dtype": dtype, **extra}
    if quantization is not None:
        kwargs["quantization_config"] = quantization
    if device_map is not None:
        kwargs["device_map"] = device_map
    model = AutoModelForCausalLM.from_pretrained(where, **kwargs)
    if "gguf_file" in extra:
        # transformers marks a de-quantized GGUF model as quantized (not saveable, refused by PEFT):
        # copy its weights into a plain model of the same config.
        plain = AutoModelForCausalLM.from_config(model.config, dtype=dtype)
        plain.load_state_dict(model.state_dict(), strict=False)
        if getattr(plain.config, "quantization_config", None) is not None:
            del plain.config.quantization_config
        plain.tie_weights()
        model = plain
    return model


def resolve_chat_template(name: str) -> str:
    """A named template (`llama-3.1`, `gemma-3`, `chatml`: unsloth's, rendered at setup; see
    chat_templates.py), or a Jinja string as given."""
    if "{%" in name or "{{" in name:
        return name
    return chat_templates.chat_template(name)


def convert_main() -> None:
    """`polyglot-convert-model <src> <dest-folder> [--dtype bfloat16]`: write a reference as a plain
    safetensors folder (e.g. a GGUF once, so every later load skips de-quantization)."""
    import torch

    args = sys.argv[1:]
    if len(args) < 2:
        print("usage: polyglot-convert-model <model ref> <dest folder> [--dtype float32|bfloat16]", file=sys.stderr)
        sys.exit(2)
    src, dest = args[0], Path(args[1])
    dtype = getattr(torch, args[3]) if len(args) >= 4 and args[2] == "--dtype" else torch.float32
    if (dest / "config.json").exists():
        print(f"{dest} exists; nothing to do")
        return
    tmp = dest.with_name(dest.name + ".tmp")
    tok = load_tokenizer(src)
    model = load_model(src, dtype=dtype)
    model.save_pretrained(tmp, safe_serialization=True)
    tok.save_pretrained(tmp)
    os.replace(tmp, dest)
    print(f"wrote {dest}")
