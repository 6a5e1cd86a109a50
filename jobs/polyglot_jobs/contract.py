"""The job contract (docs/architecture.md, "Job contract"), Python side.

In: `POLYGLOT_OUTPUT_URI` (prefix for everything the job writes), `POLYGLOT_INPUTS` (JSON name → URI),
`POLYGLOT_JOB_CONFIG` (JSON hyper-parameters), `POLYGLOT_CELL_ID`, `POLYGLOT_JOB_ATTEMPT`.
Out: `<output>/result.json` = `{status, reason?, outputs: {name: uri}, metrics: {name: number}}`, the
shape of `JobResultSchema` in src/jobs/spec.ts, and the exit code: 0 success, 1 retryable failure,
2 bad configuration, 3 bad data. Codes 2 and 3 are the Job's `nonRetryableExitCodes`: Kubernetes'
podFailurePolicy fails the Job at once instead of retrying what cannot succeed.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import sys
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, TypeVar

from .storage import Store, join, store_for

EXIT_RETRYABLE = 1
EXIT_BAD_CONFIG = 2
EXIT_BAD_DATA = 3


class JobError(Exception):
    exit_code = EXIT_RETRYABLE


class ConfigError(JobError):
    """The job spec or its hyper-parameters are wrong: retrying cannot help."""

    exit_code = EXIT_BAD_CONFIG


class DataError(JobError):
    """An input exists but is unusable (empty dataset, wrong schema): retrying cannot help."""

    exit_code = EXIT_BAD_DATA


@dataclass
class JobResult:
    outputs: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass
class JobContext:
    output_uri: str
    inputs: dict[str, str]
    config: dict[str, Any]
    cell_id: str = ""
    attempt: int = 0

    @property
    def store(self) -> Store:
        return store_for(self.output_uri)

    def out(self, *parts: str) -> str:
        return join(self.output_uri, *parts)

    def input(self, name: str) -> str:
        if name not in self.inputs:
            raise ConfigError(f"POLYGLOT_INPUTS: missing input '{name}'; give it as an s3:// URI")
        return self.inputs[name]

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> "JobContext":
        out = env.get("POLYGLOT_OUTPUT_URI", "")
        if not out:
            raise ConfigError("POLYGLOT_OUTPUT_URI: not set; the job runner sets it to the job's output prefix")

        def parse(name: str) -> Any:
            raw = env.get(name, "{}") or "{}"
            try:
                value = json.loads(raw)
            except json.JSONDecodeError as e:
                raise ConfigError(f"{name}: not valid JSON ({e.msg} at {e.pos}); give a JSON object") from None
            if not isinstance(value, dict):
                raise ConfigError(f"{name}: must be a JSON object")
            return value

        attempt = env.get("POLYGLOT_JOB_ATTEMPT", "0")
        return cls(
            output_uri=out,
            inputs={str(k): str(v) for k, v in parse("POLYGLOT_INPUTS").items()},
            config=parse("POLYGLOT_JOB_CONFIG"),
            cell_id=env.get("POLYGLOT_CELL_ID", ""),
            attempt=int(attempt) if attempt.isdigit() else 0,
        )


def write_result(ctx_output_uri: str, status: str, result: JobResult | None = None, reason: str | None = None) -> None:
    body: dict[str, Any] = {
        "status": status,
        "outputs": dict(result.outputs) if result else {},
        # JSON has no NaN/Infinity: a metric that is not a finite number is left out, not corrupted.
        "metrics": {k: float(v) for k, v in (result.metrics if result else {}).items() if math.isfinite(float(v))},
    }
    if reason:
        body["reason"] = reason[:4000]
    store_for(ctx_output_uri).put_json(join(ctx_output_uri, "result.json"), body)


def run_job(name: str, main: Callable[[JobContext], JobResult], env: Mapping[str, str] = os.environ) -> int:
    """Run one job under the contract; returns the exit code (the console scripts `sys.exit` it)."""
    started = time.time()
    try:
        ctx = JobContext.from_env(env)
    except JobError as e:
        print(f"[{name}] {e}", file=sys.stderr, flush=True)
        return e.exit_code
    try:
        done = ctx.store.get_json(ctx.out("result.json"))
    except Exception:  # unreadable now: run the job; its own reads will fail retryably if storage is down
        done = None
    if done and done.get("status") == "succeeded":
        # The output prefix is keyed by the job's inputs, so a stored success is this job's. A pod restarted
        # after its last write (node loss, a crash at interpreter exit) must not train or evaluate again.
        print(f"[{name}] already complete: {ctx.out('result.json')}", flush=True)
        return 0
    try:
        result = main(ctx)
    except JobError as e:
        print(f"[{name}] failed: {e}", file=sys.stderr, flush=True)
        _try_write_failure(ctx, f"{type(e).__name__}: {e}")
        return e.exit_code
    except Exception as e:  # anything unforeseen may be transient (network, OOM): let the runner retry
        traceback.print_exc()
        _try_write_failure(ctx, f"{type(e).__name__}: {e}")
        return EXIT_RETRYABLE
    # result.json is the completion marker: written last, after every output it points to.
    write_result(ctx.output_uri, "succeeded", result)
    print(f"[{name}] succeeded in {time.time() - started:.1f}s: {json.dumps(result.metrics, sort_keys=True)}", flush=True)
    return 0


def _try_write_failure(ctx: JobContext, reason: str) -> None:
    # A failed result must not look like a completed one to a cache check: it goes beside result.json.
    try:
        store_for(ctx.output_uri).put_json(
            join(ctx.output_uri, f"failures/attempt-{ctx.attempt}.json"), {"status": "failed", "reason": reason[:4000]}
        )
    except Exception:
        traceback.print_exc()


T = TypeVar("T")


def parse_config(cls: type[T], raw: Mapping[str, Any], where: str = "POLYGLOT_JOB_CONFIG") -> T:
    """Build a config dataclass from JSON (keys in the sweep spec's camelCase or in snake_case), naming
    the field and the fix on any mismatch."""
    raw = {re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), k): v for k, v in raw.items()}
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(fields))}")
    kwargs: dict[str, Any] = {}
    for name, value in raw.items():
        f = fields[name]
        kind = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
        ok = True
        if value is None:
            ok = "None" in kind
        elif kind.startswith("float"):
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            value = float(value) if ok else value
        elif kind.startswith("int"):
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif kind.startswith("bool"):
            ok = isinstance(value, bool)
        elif kind.startswith("str"):
            ok = isinstance(value, str)
        elif kind.startswith("list"):
            ok = isinstance(value, list)
        if not ok:
            raise ConfigError(f"{where}.{name}: expected {kind}, got {json.dumps(value)[:80]}")
        kwargs[name] = value
    obj = cls(**kwargs)
    check = getattr(obj, "validate", None)
    if check:
        check()
    return obj
