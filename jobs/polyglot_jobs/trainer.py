"""The student trainer: TRL SFT of a student on one teacher's dataset, with the paper's recipe
(docs/method.md, "Student training") as defaults. Checkpoints go to the output URI as they are saved; a restarted pod
resumes from the newest complete one (step counter, optimizer, scheduler and data order continue).

Inputs: `dataset` (the dataset manifest URI) and `subsample` (the balanced subsample's ids, chosen by the sweep;
the config's `subsampleSha256` is the digest of that file). Config (`POLYGLOT_JOB_CONFIG`): `TrainConfig` below, in
camelCase or snake_case. Outputs under the job's URI: `model/` (merged weights + tokenizer),
`adapter/` (LoRA), `checkpoints/`, `training_summary.json`, `result.json`.
"""

from __future__ import annotations

import json
import math
import os
import platform
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .contract import ConfigError, DataError, JobContext, JobResult, parse_config, run_job
from . import chat_templates
from .data import read_manifest_rows, read_subsample_ids, select_rows, to_text
from .models import load_model, load_tokenizer, parse_model_ref

METHODS = ("lora", "qlora", "full")
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


@dataclass
class TrainConfig:
    """Defaults are the paper's reported runs (docs/method.md, "Student training"); everything is overridable."""

    student: str = ""
    method: str = "qlora"
    chat_template: str = "model"
    learning_rate: float = 5e-5
    epochs: float = 2.0
    max_steps: int = -1
    per_device_batch_size: int = 2
    gradient_accumulation: int = 4
    max_seq_length: int = 16384
    packing: bool = False
    lora_r: int = 16
    lora_alpha: int = 16
    lora_dropout: float = 0.0
    lora_targets: list[str] = field(default_factory=lambda: list(LORA_TARGETS))
    weight_decay: float = 0.001
    warmup_steps: int = 5
    scheduler: str = "linear"
    optimizer: str = "adamw_8bit"
    seed: int = 3407
    # The subsample's size and seed: the sweep chose the rows with them (recorded here, not used to choose).
    train_size: int = 10500
    subsample_seed: int = 42
    # SHA-256 of the stored subsample file (input `subsample`); the sweep sets it.
    subsample_sha256: str = ""
    save_steps: int = 100
    save_total_limit: int = 2
    save: list[str] = field(default_factory=lambda: ["merged"])
    save_dtype: str = "bfloat16"
    precision: str = "auto"
    gradient_checkpointing: bool = True
    logging_steps: int = 1
    probe_examples: int = 8

    def validate(self) -> None:
        if not self.student:
            raise ConfigError("POLYGLOT_JOB_CONFIG.student: required; the student's model reference")
        parse_model_ref(self.student)
        if self.method not in METHODS:
            raise ConfigError(f"POLYGLOT_JOB_CONFIG.method: '{self.method}' is not one of {', '.join(METHODS)}")
        for name in ("learning_rate", "epochs"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"POLYGLOT_JOB_CONFIG.{name}: must be > 0")
        for name in ("per_device_batch_size", "gradient_accumulation", "max_seq_length", "train_size", "save_steps"):
            if getattr(self, name) < 1:
                raise ConfigError(f"POLYGLOT_JOB_CONFIG.{name}: must be ≥ 1")
        bad = sorted(set(self.save) - {"merged", "adapter"})
        if bad or not self.save:
            raise ConfigError("POLYGLOT_JOB_CONFIG.save: a list of 'merged' and/or 'adapter'")
        if self.method == "full" and self.save != ["merged"] and "adapter" in self.save:
            raise ConfigError("POLYGLOT_JOB_CONFIG.save: full fine-tuning has no adapter; use ['merged']")
        if self.precision not in ("auto", "bf16", "fp16", "fp32"):
            raise ConfigError("POLYGLOT_JOB_CONFIG.precision: one of auto, bf16, fp16, fp32")


def _precision(cfg: TrainConfig) -> str:
    import torch

    if not torch.cuda.is_available():
        return "fp32"
    if cfg.precision != "auto":
        return cfg.precision
    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


def _optimizer(cfg: TrainConfig, notes: list[str]) -> str:
    """`adamw_8bit` needs bitsandbytes on CUDA; elsewhere fall back to AdamW, and say so in the summary."""
    import torch

    if cfg.optimizer in ("adamw_8bit", "adamw_bnb_8bit", "paged_adamw_8bit"):
        try:
            import bitsandbytes  # noqa: F401

            if torch.cuda.is_available():
                return "adamw_bnb_8bit" if cfg.optimizer == "adamw_8bit" else cfg.optimizer
        except ImportError:
            pass
        notes.append(f"optimizer {cfg.optimizer} needs bitsandbytes on a CUDA GPU; used adamw_torch")
        return "adamw_torch"
    return cfg.optimizer


def _template_provenance(name: str) -> dict[str, Any]:
    if name == "model":
        return {"name": "model"}
    if "{%" in name or "{{" in name:
        return {"name": "inline"}
    return {"name": name, **chat_templates.provenance()}


def _probe_loss(model: Any, tokenizer: Any, texts: list[str], max_len: int) -> float:
    """Mean next-token loss over a fixed batch of training texts: the before/after figure."""
    import torch

    if not texts:
        return float("nan")
    was_training = model.training
    model.eval()
    losses = []
    device = next(model.parameters()).device
    with torch.no_grad():
        for t in texts:
            enc = tokenizer(t, return_tensors="pt", truncation=True, max_length=max_len).to(device)
            out = model(**enc, labels=enc["input_ids"])
            losses.append(float(out.loss))
    if was_training:
        model.train()
    return sum(losses) / max(1, len(losses))


def train(ctx: JobContext) -> JobResult:
    import torch
    from transformers import TrainerCallback
    from trl import SFTConfig, SFTTrainer

    cfg = parse_config(TrainConfig, ctx.config)
    notes: list[str] = []
    store = ctx.store
    started = time.time()

    rows = read_manifest_rows(ctx.input("dataset"))
    if "subsample" not in ctx.inputs:
        # Job configs from before the sweep chose the rows: the selection now has one implementation, the sweep's.
        raise ConfigError(
            "POLYGLOT_INPUTS.subsample: missing; the sweep computes the balanced subsample and passes its URI "
            "(with subsampleSha256 in the config); resume the sweep with this version to train"
        )
    if len(cfg.subsample_sha256) != 64:
        raise ConfigError("POLYGLOT_JOB_CONFIG.subsampleSha256: required with the subsample input: the 64-hex SHA-256 of its file")
    picked = select_rows(rows, read_subsample_ids(ctx.input("subsample"), cfg.subsample_sha256), ctx.input("subsample"))
    if not picked:
        raise DataError(f"dataset {ctx.input('dataset')}: no usable rows (each needs messages or prompt+response)")
    per_strategy: dict[str, int] = {}
    for r in picked:
        per_strategy[str(r["strategy"])] = per_strategy.get(str(r["strategy"]), 0) + 1

    tokenizer = load_tokenizer(cfg.student, None if cfg.chat_template == "model" else cfg.chat_template)
    if not tokenizer.chat_template:
        raise ConfigError(
            f"POLYGLOT_JOB_CONFIG.chatTemplate: the student {cfg.student} has no chat template; "
            "name one (llama-3.1, gemma-3, chatml) for its family"
        )
    texts = to_text(picked, tokenizer)

    precision = _precision(cfg)
    quant = None
    if cfg.method == "qlora":
        if not torch.cuda.is_available():
            raise ConfigError("POLYGLOT_JOB_CONFIG.method: qlora needs a CUDA GPU (bitsandbytes); use lora or full on CPU")
        from transformers import BitsAndBytesConfig

        quant = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16 if precision == "bf16" else torch.float16,
        )
    model = load_model(cfg.student, dtype=torch.float32 if precision == "fp32" else None, quantization=quant)
    if torch.cuda.is_available() and quant is None:
        model = model.to("cuda")

    peft_config = None
    if cfg.method in ("lora", "qlora"):
        from peft import LoraConfig

        present = {n.rsplit(".", 1)[-1] for n, _ in model.named_modules()}
        targets = [t for t in cfg.lora_targets if t in present]
        if not targets:
            raise ConfigError(f"POLYGLOT_JOB_CONFIG.loraTargets: none of {cfg.lora_targets} is a module of {cfg.student}")
        peft_config = LoraConfig(
            r=cfg.lora_r,
            lora_alpha=cfg.lora_alpha,
            lora_dropout=cfg.lora_dropout,
            bias="none",
            target_modules=targets,
            task_type="CAUSAL_LM",
        )

    from datasets import Dataset

    train_ds = Dataset.from_dict({"text": texts})
    work = Path(tempfile.mkdtemp(prefix="polyglot-train-"))
    ckpt_dir = work / "checkpoints"
    ckpt_dir.mkdir()

    # Resume: the newest checkpoint whose upload completed (latest.json is written after its marker).
    resume_from = None
    resumed_step = 0
    latest = store.get_json(ctx.out("checkpoints", "latest.json"))
    if latest and store.exists(latest["uri"].rstrip("/") + "/_COMPLETE"):
        resume_from = store.download_dir(latest["uri"], ckpt_dir / f"checkpoint-{latest['step']}")
        resumed_step = int(latest["step"])
        print(f"[train] resuming from step {resumed_step} ({latest['uri']})", flush=True)

    args = SFTConfig(
        output_dir=str(ckpt_dir),
        dataset_text_field="text",
        max_length=cfg.max_seq_length,
        packing=cfg.packing,
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps,
        per_device_train_batch_size=cfg.per_device_batch_size,
        gradient_accumulation_steps=cfg.gradient_accumulation,
        learning_rate=cfg.learning_rate,
        weight_decay=cfg.weight_decay,
        warmup_steps=cfg.warmup_steps,
        lr_scheduler_type=cfg.scheduler,
        optim=_optimizer(cfg, notes),
        seed=cfg.seed,
        data_seed=cfg.seed,
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        gradient_checkpointing=cfg.gradient_checkpointing and torch.cuda.is_available(),
        logging_steps=cfg.logging_steps,
        save_strategy="steps",
        save_steps=cfg.save_steps,
        save_total_limit=cfg.save_total_limit,
        report_to=[],
        include_num_input_tokens_seen=True,
        dataloader_num_workers=0,
        disable_tqdm=True,
        use_cpu=not torch.cuda.is_available(),
    )

    class CheckpointToStore(TrainerCallback):
        """Each saved checkpoint goes to the output URI, marker last, then `latest.json` points at it."""

        def on_save(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            if not state.is_world_process_zero:
                return
            step = state.global_step
            uri = ctx.out("checkpoints", f"checkpoint-{step}")
            store.upload_dir(Path(args.output_dir) / f"checkpoint-{step}", uri)
            store.put_json(ctx.out("checkpoints", "latest.json"), {"step": step, "uri": uri})
            print(f"[train] checkpoint {step} → {uri}", flush=True)

        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kw: Any) -> None:
            if logs and "loss" in logs:
                print(f"[train] step {state.global_step}: loss {logs['loss']:.4f}", flush=True)

    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=train_ds,
        processing_class=tokenizer,
        peft_config=peft_config,
        callbacks=[CheckpointToStore()],
    )
    probe = texts[: cfg.probe_examples]
    probe_len = min(cfg.max_seq_length, 2048)
    loss_before = _probe_loss(trainer.model, tokenizer, probe, probe_len) if not resume_from else float("nan")
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    if resume_from is not None and 0 < cfg.max_steps <= resumed_step:
        # The pod died after its final checkpoint (while merging or uploading). Transformers' loop, resumed at
        # max_steps, would run one more optimizer step before it checks the limit, so restore the finished
        # weights and state from the checkpoint instead of calling train().
        from transformers import TrainerState
        from transformers.trainer_utils import TrainOutput

        trainer._load_from_checkpoint(str(resume_from))
        trainer.state = TrainerState.load_from_json(str(Path(resume_from) / "trainer_state.json"))
        logged = [h["loss"] for h in trainer.state.log_history if "loss" in h]
        out = TrainOutput(
            trainer.state.global_step, sum(logged) / len(logged) if logged else float("nan"), {"train_runtime": 0.0}
        )
        print(f"[train] the checkpoint at step {resumed_step} is final: no further steps", flush=True)
    else:
        out = trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    loss_after = _probe_loss(trainer.model, tokenizer, probe, probe_len)
    state = trainer.state

    outputs: dict[str, str] = {}
    save_dtype = getattr(torch, cfg.save_dtype)
    if "adapter" in cfg.save and peft_config is not None:
        adir = work / "adapter"
        trainer.model.save_pretrained(adir)
        tokenizer.save_pretrained(adir)
        store.upload_dir(adir, ctx.out("adapter"))
        outputs["adapter"] = ctx.out("adapter") + "/"
    if "merged" in cfg.save:
        mdir = work / "model"
        if peft_config is None:
            merged = trainer.model
        elif cfg.method == "qlora":
            # Merging into 4-bit weights loses precision: reload the base in 16 bits and merge there.
            from peft import PeftModel

            adir = work / "adapter-for-merge"
            trainer.model.save_pretrained(adir)
            base = load_model(cfg.student, dtype=save_dtype)
            merged = PeftModel.from_pretrained(base, adir).merge_and_unload()
        else:
            merged = trainer.model.merge_and_unload()
        merged = merged.to(save_dtype)
        merged.save_pretrained(mdir, safe_serialization=True)
        tokenizer.save_pretrained(mdir)
        store.upload_dir(mdir, ctx.out("model"))
        outputs["model"] = ctx.out("model") + "/"

    curve = [
        {"step": h["step"], "loss": h["loss"], "learning_rate": h.get("learning_rate")}
        for h in state.log_history
        if "loss" in h
    ]
    tokens = int(getattr(state, "num_input_tokens_seen", 0) or 0)
    seconds = time.time() - started
    import transformers
    import trl

    summary = {
        "config": asdict(cfg),
        "student": cfg.student,
        "dataset": ctx.input("dataset"),
        "subsample": ctx.input("subsample"),
        "examples": len(picked),
        "per_strategy": per_strategy,
        "subsample_ids": [r.get("id") for r in picked],
        "global_step": state.global_step,
        "resumed_from_step": resumed_step,
        "loss_curve": curve,
        "train_loss": out.training_loss,
        "loss_before": loss_before,
        "loss_after": loss_after,
        "tokens_seen": tokens,
        "train_runtime_s": out.metrics.get("train_runtime"),
        "wall_s": seconds,
        "precision": precision,
        "optimizer": args.optim if isinstance(args.optim, str) else str(args.optim),
        "notes": notes,
        # Which text the student learned: a named template's source package (unsloth, pinned) or the tokenizer's own.
        "chat_template": _template_provenance(cfg.chat_template),
        "peak_gpu_memory_bytes": torch.cuda.max_memory_allocated() if torch.cuda.is_available() else None,
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "trl": trl.__version__,
        },
    }
    store.put_json(ctx.out("training_summary.json"), json.loads(json.dumps(summary, default=str)))
    outputs["summary"] = ctx.out("training_summary.json")
    metrics = {
        "global_step": state.global_step,
        "resumed_from_step": resumed_step,
        "examples": len(picked),
        "tokens_seen": tokens,
        "train_loss": out.training_loss,
        "loss_after": loss_after,
        "wall_seconds": seconds,
    }
    if not math.isnan(loss_before):
        metrics["loss_before"] = loss_before
    if math.isnan(loss_after):
        del metrics["loss_after"]
    return JobResult(outputs=outputs, metrics=metrics)


def main() -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(run_job("train", train))


if __name__ == "__main__":
    main()
