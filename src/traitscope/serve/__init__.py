"""Serving a LoadedModel over HTTP: OpenAI-compatible chat completions with per-request steering
and monitoring, concurrent requests batched (``traitscope serve``)."""

from traitscope.serve.openai_compat import DEFAULT_HOST, MAX_BODY_BYTES, MAX_TOKENS_CAP, create_app
from traitscope.serve.runner import BackgroundServer, run_server

__all__ = ["DEFAULT_HOST", "MAX_BODY_BYTES", "MAX_TOKENS_CAP", "BackgroundServer", "create_app", "run_server"]
