"""The trainer on the small real model (SmolLM2-135M-Instruct) on CPU: a few LoRA steps lower the loss
on the training batch; a SIGKILLed trainer resumes from its last stored checkpoint."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import write_dataset, write_subsample

BASE = {"method": "lora", "trainSize": 12, "learningRate": 0.001, "perDeviceBatchSize": 2,
        "gradientAccumulation": 1, "maxSeqLength": 128, "warmupSteps": 0, "probeExamples": 4}


def start(out: Path, dataset: str, config: dict, subsample: bool = True) -> subprocess.Popen:
    """Run the trainer as the sweep does: with the dataset and the subsample the sweep chose (4 rows per strategy)."""
    inputs = {"dataset": dataset}
    if subsample:
        inputs["subsample"], sha = write_subsample(Path(dataset).parent, dataset, 4)
        config = {**config, "subsampleSha256": sha}
    env = {
        **os.environ,
        "POLYGLOT_OUTPUT_URI": str(out),
        "POLYGLOT_INPUTS": json.dumps(inputs),
        "POLYGLOT_JOB_CONFIG": json.dumps(config),
    }
    return subprocess.Popen([sys.executable, "-m", "polyglot_jobs.trainer"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_few_steps_lower_the_loss_and_write_outputs(small_model, tmp_path):
    out = tmp_path / "out"
    p = start(out, write_dataset(tmp_path / "ds"), {**BASE, "student": small_model, "maxSteps": 4, "saveSteps": 4,
                                                     "save": ["merged", "adapter"]})
    log, _ = p.communicate(timeout=900)
    assert p.returncode == 0, log[-3000:]
    result = json.loads((out / "result.json").read_text())
    m = result["metrics"]
    assert m["global_step"] == 4 and m["examples"] == 12 and m["tokens_seen"] > 0
    assert m["loss_after"] < m["loss_before"], m
    assert (out / "model" / "_COMPLETE").exists() and (out / "model" / "model.safetensors").exists()
    assert (out / "adapter" / "adapter_config.json").exists()
    summary = json.loads((out / "training_summary.json").read_text())
    assert summary["per_strategy"] == {"generate": 4, "translate": 4, "respond": 4}
    assert [c["step"] for c in summary["loss_curve"]] == [1, 2, 3, 4]
    assert summary["optimizer"] == "adamw_torch" and summary["notes"]  # adamw_8bit needs CUDA: said so


def test_killed_trainer_resumes_from_its_checkpoint(small_model, tmp_path):
    out = tmp_path / "out"
    ds = write_dataset(tmp_path / "ds")
    cfg = {**BASE, "student": small_model, "maxSteps": 10, "saveSteps": 2, "save": ["adapter"]}
    p = start(out, ds, cfg)
    latest = out / "checkpoints" / "latest.json"
    deadline = time.time() + 600
    while time.time() < deadline and p.poll() is None:
        if latest.exists() and json.loads(latest.read_text())["step"] >= 2:
            break
        time.sleep(0.05)
    assert p.poll() is None, "the trainer finished before it could be killed"
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    killed_at = json.loads(latest.read_text())["step"]
    assert not (out / "result.json").exists()

    p2 = start(out, ds, cfg)
    log, _ = p2.communicate(timeout=900)
    assert p2.returncode == 0, log[-3000:]
    assert f"resuming from step {killed_at}" in log
    steps = [int(line.split("step ")[1].split(":")[0]) for line in log.splitlines() if line.startswith("[train] step ")]
    assert steps[0] == killed_at + 1 and steps[-1] == 10, steps  # the counter continues, it does not restart
    result = json.loads((out / "result.json").read_text())["metrics"]
    assert result["resumed_from_step"] == killed_at and result["global_step"] == 10


def test_qlora_on_cpu_is_a_config_error(small_model, tmp_path):
    p = start(tmp_path / "out", write_dataset(tmp_path / "ds"), {**BASE, "student": small_model, "method": "qlora"})
    log, _ = p.communicate(timeout=300)
    if p.returncode == 0:
        pytest.skip("a CUDA GPU is present")
    assert p.returncode == 2 and "qlora needs a CUDA GPU" in log


def test_unknown_field_names_the_field(tmp_path):
    p = start(tmp_path / "out", write_dataset(tmp_path / "ds"), {"student": "x/y", "learningRat": 1})
    log, _ = p.communicate(timeout=120)
    assert p.returncode == 2 and "unknown field(s) learning_rat" in log


def test_a_job_without_the_sweeps_subsample_is_refused(small_model, tmp_path):
    """The rows are chosen once, by the sweep: a config without them names what is missing."""
    p = start(tmp_path / "out", write_dataset(tmp_path / "ds"), {**BASE, "student": small_model}, subsample=False)
    log, _ = p.communicate(timeout=300)
    assert p.returncode == 2 and "POLYGLOT_INPUTS.subsample: missing" in log, log[-2000:]


def test_a_changed_subsample_file_is_refused(small_model, tmp_path):
    ds = write_dataset(tmp_path / "ds")
    path, sha = write_subsample(tmp_path / "ds", ds, 4)
    Path(path).write_text(Path(path).read_text().replace("generate-0", "generate-5"))
    env = {**os.environ, "POLYGLOT_OUTPUT_URI": str(tmp_path / "out"),
           "POLYGLOT_INPUTS": json.dumps({"dataset": ds, "subsample": path}),
           "POLYGLOT_JOB_CONFIG": json.dumps({**BASE, "student": small_model, "subsampleSha256": sha})}
    p = subprocess.run([sys.executable, "-m", "polyglot_jobs.trainer"], env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 3 and "expected" in p.stdout + p.stderr and "sha256" in p.stdout + p.stderr


def test_empty_dataset_is_a_data_error(small_model, tmp_path):
    ds = write_dataset(tmp_path / "ds", per_strategy=0)
    p = start(tmp_path / "out", ds, {**BASE, "student": small_model})
    log, _ = p.communicate(timeout=300)
    assert p.returncode == 3 and "no usable rows" in log


def test_restart_after_the_last_checkpoint_trains_no_further(small_model, tmp_path):
    """A pod that dies after its final checkpoint (e.g. while uploading the model) is restarted: it must not
    train past maxSteps, and its result must say it resumed at the end."""
    out = tmp_path / "out"
    ds = write_dataset(tmp_path / "ds")
    cfg = {**BASE, "student": small_model, "maxSteps": 2, "saveSteps": 1, "save": ["adapter"]}
    p = start(out, ds, cfg)
    log, _ = p.communicate(timeout=900)
    assert p.returncode == 0, log[-3000:]
    first = json.loads((out / "result.json").read_text())["metrics"]
    (out / "result.json").unlink()  # as if the pod had died before its last write

    p2 = start(out, ds, cfg)
    log, _ = p2.communicate(timeout=900)
    assert p2.returncode == 0, log[-3000:]
    assert "resuming from step 2" in log
    result = json.loads((out / "result.json").read_text())["metrics"]
    assert result["resumed_from_step"] == 2 and result["global_step"] == 2, result
    # The restored weights are the trained ones, not the base model's.
    assert result["loss_after"] == pytest.approx(first["loss_after"], rel=1e-4), (result, first)
