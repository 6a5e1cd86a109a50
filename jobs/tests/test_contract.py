"""The job contract's own rules, independent of any model: exit codes, result.json as the completion
marker, and a restarted job that finds its own stored success doing no work again."""

import json

from polyglot_jobs.contract import ConfigError, JobResult, run_job


def env_for(out, config=None):
    return {"POLYGLOT_OUTPUT_URI": str(out), "POLYGLOT_INPUTS": "{}", "POLYGLOT_JOB_CONFIG": json.dumps(config or {})}


def test_success_writes_result_last_and_a_restart_does_no_work(tmp_path):
    calls = []

    def main(ctx):
        calls.append(ctx.attempt)
        return JobResult(outputs={"x": ctx.out("x")}, metrics={"m": 1.5, "nan": float("nan")})

    out = tmp_path / "out"
    assert run_job("t", main, env_for(out)) == 0
    result = json.loads((out / "result.json").read_text())
    assert result == {"status": "succeeded", "outputs": {"x": str(out / "x")}, "metrics": {"m": 1.5}}
    # A pod restarted after the last write (node loss, a crash at exit) finds its success and exits 0.
    assert run_job("t", main, env_for(out)) == 0
    assert calls == [0]


def test_failures_keep_their_exit_codes_and_never_look_complete(tmp_path):
    def bad_config(ctx):
        raise ConfigError("POLYGLOT_JOB_CONFIG.lr: must be > 0")

    def transient(ctx):
        raise ConnectionError("S3 unreachable")

    out = tmp_path / "out"
    assert run_job("t", bad_config, env_for(out)) == 2
    assert run_job("t", transient, env_for(out)) == 1
    assert not (out / "result.json").exists()
    failure = json.loads((out / "failures" / "attempt-0.json").read_text())
    assert failure["status"] == "failed" and "S3 unreachable" in failure["reason"]
    # After failures, a later attempt still runs.
    assert run_job("t", lambda ctx: JobResult(), env_for(out)) == 0
    assert json.loads((out / "result.json").read_text())["status"] == "succeeded"


def test_missing_output_uri_is_a_config_error(tmp_path):
    assert run_job("t", lambda ctx: JobResult(), {}) == 2
