"""The dashboard's Live view: a prompt in, tokens out as they are generated, each coloured by its
projection. It runs on the OpenAI-compatible server's app (:mod:`traitscope.serve`): the Live view
posts a streaming chat completion with a ``traitscope`` field (monitor, optional steer), so its
requests queue in that server's batcher with everyone else's (a full queue answers 429 at once,
never a thread waiting on a lock). The model loads on first use, one model at a time."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

from safetensors import safe_open

from traitscope.models.loader import LoadedModel
from traitscope.web.files import RunRoot

MAX_PROMPT_CHARS = 2000
MAX_NEW_TOKENS = 200
MAX_QUEUE = 16
TIMEOUT_S = 300.0


def steering_available() -> bool:
    """Steering controls show only when traitscope.steering offers what the Live view uses."""
    try:
        from traitscope.steering import SteeringSpec, build_terms, steer  # noqa: F401
    except Exception:  # not written yet, or broken mid-edit: the view hides the controls
        return False
    return True


class LiveEngine:
    def __init__(
        self, root: RunRoot, loader: Callable[[str], LoadedModel] | None = None, host: str = "127.0.0.1"
    ) -> None:
        self.root = root
        self.loader = loader
        self.host = host
        self._loading = threading.Lock()  # held only while a model loads
        self.model: LoadedModel | None = None
        self.model_slug: str | None = None
        self.app: Any = None
        self.loads = 0

    def model_name(self, slug: str) -> str:
        """The name to load a run root's model folder by: the model recorded in its vector files
        (an alias, hub id or directory), else the folder name itself."""
        for trait in self.root.traits(slug):
            for f in self.root.vector_files(slug, trait):
                try:
                    with safe_open(str(self.root.rel_path(f["path"])), framework="pt") as fh:
                        return json.loads((fh.metadata() or {})["provenance"])["model"]
                except Exception:
                    continue
        return slug

    def server(self, slug: str) -> Any:
        """The serving app's request handler for ``slug``'s model, loading it on first use."""
        with self._loading:
            if self.app is None or self.model_slug != slug:
                if self.app is not None:  # one model at a time: drop the old one first
                    self.app.state.batcher.close()
                    self.app = self.model = None
                if self.loader is not None:
                    self.model = self.loader(slug)
                else:
                    from traitscope.models import load_model

                    self.model = load_model(self.model_name(slug))
                from traitscope.serve import create_app

                self.app = create_app(
                    self.model,
                    run_root=self.root.root,
                    model_slug=slug,
                    max_tokens_cap=MAX_NEW_TOKENS,
                    max_queue=MAX_QUEUE,
                    timeout_s=TIMEOUT_S,
                    host=self.host,
                )
                self.model_slug = slug
                self.loads += 1
            return self.app.state.server

    def close(self) -> None:
        if self.app is not None:
            self.app.state.batcher.close()

    def info(self, slug: str) -> dict[str, Any]:
        traits = []
        for trait in self.root.traits(slug):
            files = self.root.vector_files(slug, trait)
            options: dict[str, list[int]] = {}
            for f in files:
                if f["position"] != "response_all":
                    continue
                try:
                    with safe_open(str(self.root.rel_path(f["path"])), framework="pt") as fh:
                        layers = sorted(int(k.split(".", 1)[1]) for k in fh.keys())  # noqa: SIM118
                except Exception:
                    continue
                options[f"{f['site']}/{f['method']}"] = layers
            if options:
                traits.append({"name": trait, "options": options})
        return {
            "model": slug,
            "loaded": self.app is not None and self.model_slug == slug,
            "steering": steering_available(),
            "traits": traits,
            "max_new_tokens": MAX_NEW_TOKENS,
            "max_prompt_chars": MAX_PROMPT_CHARS,
        }
