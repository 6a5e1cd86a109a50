"""Reference side of the judge parity tests: prometheus-eval's own code, run on the test's items.

Run with .tools/protocol-venv's Python (prometheus-eval installed --no-deps). The package's `__init__`
imports clients that are not installed, so the package is registered without running it and its
modules are imported from the installed files: `judge.py` builds the messages through
`PrometheusEval.absolute_grade` exactly as for a chat API (a recording model stands in for the server),
and `parser.py` reads the verdicts. The two third-party imports the judge module makes and this path
never calls (FastChat's conversation templates for vLLM prompts, tqdm's progress bar) are stubbed.

stdin: {"items": [{"instruction", "response", "rubric": {criteria, score1_description..}}],
        "outputs": [str], "formats": [{"template", "values"}]}
stdout: {"version", "messages": [[{role, content}]], "verdicts": [int|null], "formats": [{"ok"|"error"}]}
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.metadata
import json
import pathlib
import sys
import types
import warnings
from typing import Any


def load_package() -> pathlib.Path:
    dist = importlib.metadata.distribution("prometheus-eval")
    root = pathlib.Path(str(dist.locate_file("prometheus_eval")))
    pkg = types.ModuleType("prometheus_eval")
    pkg.__path__ = [str(root)]  # a package whose submodules import from the installed files
    sys.modules["prometheus_eval"] = pkg
    fastchat = types.ModuleType("fastchat")
    conversation = types.ModuleType("fastchat.conversation")

    def no_conv_template(name: str) -> None:
        raise AssertionError(f"the chat-API path must not build a {name} conversation prompt")

    conversation.get_conv_template = no_conv_template  # type: ignore[attr-defined]
    sys.modules["fastchat"] = fastchat
    sys.modules["fastchat.conversation"] = conversation
    tqdm = types.ModuleType("tqdm")
    tqdm.tqdm = lambda iterable=None, *a, **k: iterable  # type: ignore[attr-defined]
    sys.modules["tqdm"] = tqdm
    return root


class RecordingModel:
    """Answers every grading request with a valid verdict and keeps what it was sent."""

    def __init__(self) -> None:
        self.sent: list[Any] = []

    def validate_mockllm(self) -> bool:
        return True

    def completions(self, inputs: list[Any], use_tqdm: bool = False, **params: Any) -> list[str]:
        self.sent.extend(inputs)
        return ["Recorded. [RESULT] 5"] * len(inputs)


def main() -> None:
    request = json.load(sys.stdin)
    load_package()
    judge = importlib.import_module("prometheus_eval.judge")
    prompts = importlib.import_module("prometheus_eval.prompts")
    parser = importlib.import_module("prometheus_eval.parser")

    model = RecordingModel()
    grader = judge.PrometheusEval(model=model)
    items = request["items"]
    rubrics = [prompts.SCORE_RUBRIC_TEMPLATE.format(**item["rubric"]) for item in items]
    # The package prints progress to stdout, which carries this script's answer: sent to stderr instead.
    with warnings.catch_warnings(), contextlib.redirect_stdout(sys.stderr):
        warnings.simplefilter("ignore")  # "no reference answer": the study graded without one
        grader.absolute_grade(
            instructions=[i["instruction"] for i in items],
            responses=[i["response"] for i in items],
            rubric=rubrics,
        )

    verdicts = [parser.parse_output(o, mode="absolute")[1] for o in request["outputs"]]

    formats: list[dict[str, str]] = []
    for f in request["formats"]:
        try:
            formats.append({"ok": f["template"].format(**f["values"])})
        except (KeyError, ValueError, IndexError, AttributeError) as e:
            formats.append({"error": type(e).__name__})

    json.dump(
        {
            "version": importlib.metadata.version("prometheus-eval"),
            "messages": model.sent,
            "verdicts": verdicts,
            "formats": formats,
        },
        sys.stdout,
        ensure_ascii=True,
    )


if __name__ == "__main__":
    main()
