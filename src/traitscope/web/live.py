"""The dashboard's Live view: a prompt in, tokens out as server-sent events, each with its
projections. The model loads on first use; one generation runs at a time, because monitor and
steering hooks on a shared model would otherwise mix. Generation runs in a worker thread that
always finishes (it is short: max_new_tokens is capped), so a browser that goes away never
leaves hooks attached or the lock held."""

from __future__ import annotations

import contextlib
import json
import math
import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from safetensors import safe_open

from traitscope.errors import TraitscopeError
from traitscope.models.loader import LoadedModel
from traitscope.web.files import RunRoot

MAX_PROMPT_CHARS = 2000
MAX_NEW_TOKENS = 200
BUSY_WAIT_S = 120


def steering_available() -> bool:
    """Steering controls show only when traitscope.steering offers what the Live view uses."""
    try:
        from traitscope.steering import SteeringSpec, build_terms, steer  # noqa: F401
    except Exception:  # not written yet, or broken mid-edit: the view hides the controls
        return False
    return True


@dataclass
class LiveRequest:
    prompt: str
    traits: list[str]
    site: str = "residual"
    method: str = "probe"
    position: str = "response[:]"
    layer: int | None = None  # None: each trait's best layer
    max_new_tokens: int = 48
    steer_trait: str | None = None
    steer_layer: int | None = None
    ratio: float | None = None

    def check(self) -> LiveRequest:
        if not self.prompt.strip():
            raise TraitscopeError("the prompt is empty")
        if len(self.prompt) > MAX_PROMPT_CHARS:
            raise TraitscopeError(f"the prompt is over {MAX_PROMPT_CHARS} characters")
        if not self.traits:
            raise TraitscopeError("choose at least one trait to monitor")
        if not 1 <= self.max_new_tokens <= MAX_NEW_TOKENS:
            raise TraitscopeError(f"max_new_tokens must be in 1-{MAX_NEW_TOKENS}")
        if self.steer_trait:
            if self.steer_layer is None or self.ratio is None:
                raise TraitscopeError("steering needs a trait, a layer and a ratio")
            if not math.isfinite(self.ratio) or not 0 <= self.ratio <= 4:
                raise TraitscopeError("the steering ratio must be between 0 and 4")
        return self


def sse(event: str, data: Any) -> str:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


class LiveEngine:
    def __init__(self, root: RunRoot, loader: Callable[[str], LoadedModel] | None = None) -> None:
        self.root = root
        self.loader = loader
        self.lock = threading.Lock()
        self.model: LoadedModel | None = None
        self.model_slug: str | None = None
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

    def _load(self, slug: str) -> LoadedModel:
        if self.model is None or self.model_slug != slug:
            self.model = None  # one model at a time: drop the old one before loading
            if self.loader is not None:
                self.model = self.loader(slug)
            else:
                from traitscope.models import load_model

                self.model = load_model(self.model_name(slug))
            self.model_slug = slug
            self.loads += 1
        return self.model

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
            "loaded": self.model is not None and self.model_slug == slug,
            "steering": steering_available(),
            "traits": traits,
            "max_new_tokens": MAX_NEW_TOKENS,
            "max_prompt_chars": MAX_PROMPT_CHARS,
        }

    def _steering(self, lm: LoadedModel, slug: str, req: LiveRequest) -> contextlib.AbstractContextManager:
        if not req.steer_trait:
            return contextlib.nullcontext()
        if not steering_available():
            raise TraitscopeError("steering is not available in this installation")
        from traitscope.activations import parse_position
        from traitscope.steering import SteeringSpec, build_terms, steer
        from traitscope.store import RunDir, load_vectors

        run = RunDir(self.root.path(slug, req.steer_trait))
        vset = load_vectors(run.vector_file(parse_position(req.position).slug, req.site, req.method))
        vset.check_model(lm.n_layers, lm.hidden_size, lm.site_dim(req.site), lm.name)
        terms = build_terms(vset, [int(req.steer_layer)], ratio=float(req.ratio))  # type: ignore[arg-type]
        return steer(lm, SteeringSpec(terms=terms))

    def _work(self, slug: str, req: LiveRequest, out: queue.Queue) -> None:
        from traitscope.generation import SamplingConfig
        from traitscope.monitor import load_bank, stream_prompt
        from traitscope.prompts import Prompt

        if not self.lock.acquire(timeout=BUSY_WAIT_S):
            out.put(("error", {"message": "another generation is still running; try again"}))
            out.put(None)
            return
        try:
            if self.model is None or self.model_slug != slug:
                out.put(("status", {"message": f"loading {slug} (first use)"}))
            lm = self._load(slug)
            layers = None if req.layer is None else [req.layer]
            bank = load_bank(lm, self.root.root, req.traits, req.site, req.method, req.position, layers, slug)
            out.put(("meta", _meta(bank, req)))
            with self._steering(lm, slug, req):
                for ev in stream_prompt(lm, Prompt("live", req.prompt), bank, SamplingConfig(req.max_new_tokens)):
                    out.put(("done" if ev.get("done") else "token", ev))
        except TraitscopeError as exc:
            out.put(("error", {"message": str(exc)}))
        except Exception as exc:  # the stream must end with a message, not silence
            out.put(("error", {"message": f"internal error: {type(exc).__name__}: {exc}"}))
        finally:
            self.lock.release()
            out.put(None)

    def start(self, slug: str, req: LiveRequest) -> queue.Queue:
        out: queue.Queue = queue.Queue()
        threading.Thread(target=self._work, args=(slug, req, out), daemon=True, name="traitscope-live").start()
        return out


def _meta(bank: Any, req: LiveRequest) -> dict[str, Any]:
    return {
        "traits": bank.traits,
        "layers": {t: bank.layers_of(t) for t in bank.traits},
        "thresholds": {t: {str(e.layer): e.threshold for e in bank.entries if e.trait == t} for t in bank.traits},
        "site": bank.site,
        "method": req.method,
        "steering": None
        if not req.steer_trait
        else {"trait": req.steer_trait, "layer": req.steer_layer, "ratio": req.ratio},
    }


def drain(q: queue.Queue, timeout: float = 600) -> Iterator[tuple[str, Any]]:
    """(event, data) pairs from a worker's queue until it ends (for tests and sync callers)."""
    while True:
        item = q.get(timeout=timeout)
        if item is None:
            return
        yield item
