"""Polyglot's in-pod jobs. Each entrypoint follows the job contract
(docs/architecture.md, "Job contract"): a job spec comes in through the environment (inputs as URIs,
hyper-parameters as JSON), outputs and `result.json` go to the
output URI, and a failure exits non-zero with a reason."""

__version__ = "0.1.0"
