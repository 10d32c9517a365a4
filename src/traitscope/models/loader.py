"""Load any causal LM: a bundled alias (GGUF -> cached float32 safetensors), a local directory,
or a Hugging Face id (from the local HF cache when offline).

The first load of a bundled model de-quantises its GGUF (20-90 s) and writes a safetensors copy
to ``$TRAITSCOPE_CACHE/models/<alias>/``; later loads read that copy. The copy is written to a
temporary directory and renamed into place, and its manifest records each file's size and
sha256, so a partial or corrupt cache is detected and rebuilt, never loaded.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from traitscope.errors import TraitscopeError
from traitscope.models.registry import BUNDLED, DEFAULT_MODEL, BundledModel, cache_root
from traitscope.models.sites import SITES, get_module, site_table
from traitscope.store.layout import model_slug

MANIFEST = "traitscope-manifest.json"


@dataclass
class LoadedModel:
    """A causal LM with its tokenizer and the facts the rest of traitscope needs."""

    name: str  # alias, hub id or directory as the user gave it
    model: nn.Module
    tokenizer: Any
    model_type: str
    n_layers: int
    hidden_size: int
    instruct: bool  # has a chat template: prompts are wrapped in it
    load_seconds: float = 0.0
    source: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def device(self) -> torch.device:
        """Where inputs go (the input embeddings' device when the model is spread over several)."""
        from traitscope.models.placement import input_device

        return input_device(self.model)

    @property
    def slug(self) -> str:
        """File-system name for run directories (``org/model`` -> ``org--model``)."""
        return model_slug(self.name)

    def module(self, site: str, layer: int) -> nn.Module:
        return get_module(self.model, self.model_type, site, layer)

    def site_dim(self, site: str) -> int:
        mod = self.module(site, 0)
        return int(mod.out_features) if isinstance(mod, nn.Linear) else self.hidden_size

    def sites(self) -> list[str]:
        return list(SITES)

    @property
    def pad_id(self) -> int:
        """The one padding id: the tokenizer's pad token (``wrap_model`` sets it to EOS when missing)."""
        pad = self.tokenizer.pad_token_id
        return int(pad) if pad is not None else self.eos_ids[0]

    def left_pad(self, rows: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """``(ids, attention_mask)`` on the model's device, rows right-aligned (generation's padding)."""
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            if r:
                ids[i, width - len(r) :] = torch.tensor(list(r), dtype=torch.long)
                mask[i, width - len(r) :] = 1
        return ids.to(self.device), mask.to(self.device)

    @property
    def eos_ids(self) -> list[int]:
        eos = self.model.generation_config.eos_token_id
        if eos is None:
            eos = self.tokenizer.eos_token_id
        return [eos] if isinstance(eos, int) else list(eos)

    def uses_template(self, raw: bool = False) -> bool:
        return self.instruct and not raw and bool(getattr(self.tokenizer, "chat_template", None))

    def format_prompt(self, prompt: str, system: str | None = None, raw: bool = False) -> str:
        """The text the model reads before its answer: the chat template for instruct models
        (its own default system prompt unless ``system`` is given), the bare prompt otherwise."""
        if not self.uses_template(raw):
            return f"{system}\n\n{prompt}" if system else prompt
        messages = [{"role": "user", "content": prompt}]
        if system:
            messages.insert(0, {"role": "system", "content": system})
        try:
            return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        except Exception:  # some templates (gemma) reject a system role: fold it into the turn
            messages = [{"role": "user", "content": f"{system}\n\n{prompt}" if system else prompt}]
            return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def prompt_ids(self, prompt: str, system: str | None = None, raw: bool = False) -> list[int]:
        """Token ids of a prompt as the model reads it. A chat-templated text already holds its
        special tokens, so none are added (a second ``<|im_start|>`` before SmolLM2's template
        makes it answer in nonsense); a raw text gets the tokenizer's BOS if it uses one."""
        text = self.format_prompt(prompt, system, raw)
        return list(self.tokenizer(text, add_special_tokens=not self.uses_template(raw)).input_ids)

    def response_ids(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False).input_ids)


def _sha256(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _manifest_ok(directory: Path, source_size: int) -> bool:
    try:
        manifest = json.loads((directory / MANIFEST).read_text())
        if manifest.get("source_size") != source_size:
            return False
        for name, meta in manifest["files"].items():
            path = directory / name
            if path.stat().st_size != meta["size"]:
                return False
            if name.endswith(".safetensors") and _sha256(path) != meta["sha256"]:
                return False
        return True
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _quiet() -> Any:
    """Silence transformers' chatter (progress bars, deprecation notes) during a load."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    logging.getLogger("transformers").setLevel(logging.ERROR)
    return warnings.catch_warnings()


def _build_cache(bundled: BundledModel, target: Path, gguf: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    # save_pretrained refuses a GGUF-loaded model until its quantizer is gone: the weights are
    # already de-quantised float32, so drop the bookkeeping.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.config.pad_token_id = (
        model.config.pad_token_id if model.config.pad_token_id is not None else model.config.eos_token_id
    )
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        files = {
            p.name: {"size": p.stat().st_size, "sha256": _sha256(p) if p.suffix == ".safetensors" else None}
            for p in tmp.iterdir()
            if p.is_file()
        }
        manifest = {"alias": bundled.alias, "source": str(gguf), "source_size": gguf.stat().st_size, "files": files}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2))
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def bundled_cache_dir(alias: str) -> Path:
    return cache_root() / "models" / alias


def cached_status(alias: str) -> str:
    """'cached', 'missing' or 'invalid' for a bundled alias (without loading anything)."""
    d = bundled_cache_dir(alias)
    if not d.exists():
        return "missing"
    try:
        size = json.loads((d / MANIFEST).read_text())["source_size"]
    except (OSError, ValueError, KeyError):
        return "invalid"
    return "cached" if _manifest_ok(d, size) else "invalid"


def _resolve(name: str) -> tuple[str, BundledModel | None]:
    if name in BUNDLED:
        return name, BUNDLED[name]
    if Path(name).expanduser().is_dir():
        return str(Path(name).expanduser()), None
    if name.count("/") == 1 and not name.startswith((".", "/")):
        return name, None  # a hub id: from_pretrained reads the local HF cache when offline
    raise TraitscopeError(
        f"unknown model {name!r}; use a bundled alias ({', '.join(BUNDLED)}), "
        "a local model directory, or a Hugging Face id like 'google/gemma-2-2b'"
    )


def load_model(
    name: str | None = None,
    device: str | None = None,
    dtype: torch.dtype | str | None = None,
    device_map: str | None = None,
    max_memory: dict[int | str, str] | None = None,
    adapter: str | Path | None = None,
) -> LoadedModel:
    """Load a model by bundled alias, directory or hub id; float32 on CPU, bfloat16 on CUDA.
    ``device_map``/``max_memory`` spread it over devices (see :mod:`traitscope.models.placement`).
    ``adapter``: a peft LoRA adapter directory (``traitscope finetune``), merged into the weights,
    so every hook site and command sees an ordinary model; ``lm.extra["adapter"]`` records it."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from traitscope.models.placement import check_device_map, placement_kwargs

    name = name or DEFAULT_MODEL
    check_device_map(device_map)
    source, bundled = _resolve(name)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if dtype is None:
        dtype = torch.float32 if device == "cpu" else torch.bfloat16
    elif isinstance(dtype, str):
        dtype = getattr(torch, dtype)
    start = time.perf_counter()
    with _quiet():
        warnings.simplefilter("ignore")
        if bundled is not None:
            gguf = bundled.gguf_path()
            target = bundled_cache_dir(bundled.alias)
            if not _manifest_ok(target, gguf.stat().st_size):
                _build_cache(bundled, target, gguf)
            source = str(target)
        try:
            config = AutoConfig.from_pretrained(source)
        except (OSError, ValueError) as exc:
            raise TraitscopeError(f"cannot load model {name!r}: {str(exc).splitlines()[0]}") from None
        site_table(config.model_type)  # fail before the weights load on an unsupported family
        tokenizer = AutoTokenizer.from_pretrained(source)
        placed = placement_kwargs(device_map, max_memory, cache_root())
        model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype, **placed)
        if adapter is not None:
            model = merge_adapter(model, adapter)
    if not placed:
        model.to(device)
    instruct = bundled.instruct if bundled else None
    lm = wrap_model(model, tokenizer, name, instruct)
    lm.load_seconds, lm.source = time.perf_counter() - start, source
    if adapter is not None:
        from traitscope.models.identity import weights_hash

        lm.extra["adapter"] = str(Path(adapter).expanduser())
        # merged weights are not the base weights: the adapter's hash is part of the model's identity
        lm.extra["identity_extra"] = {"adapter": weights_hash(Path(adapter).expanduser())}
    return lm


def merge_adapter(model: nn.Module, adapter: str | Path) -> nn.Module:
    """Fold a peft LoRA adapter directory into the base weights (the LoRA modules disappear)."""
    path = Path(adapter).expanduser()
    if not (path / "adapter_config.json").is_file():
        raise TraitscopeError(
            f"--adapter {adapter}: no adapter_config.json there; give a `traitscope finetune --out` folder"
        )
    from peft import PeftModel

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            return PeftModel.from_pretrained(model, str(path)).merge_and_unload()
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        raise TraitscopeError(
            f"--adapter {adapter}: cannot apply to this model ({str(exc).splitlines()[0][:160]})"
        ) from None


def wrap_model(model: nn.Module, tokenizer: Any, name: str = "custom", instruct: bool | None = None) -> LoadedModel:
    """Wrap an already-loaded transformers model (e.g. a tiny random one built from a config).
    ``instruct=None`` means: instruct when the tokenizer has a chat template."""
    config = model.config
    site_table(config.model_type)
    text_config = config.get_text_config() if hasattr(config, "get_text_config") else config
    if tokenizer is not None:
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        tokenizer.padding_side = "left"
    model.eval().requires_grad_(False)
    return LoadedModel(
        name=name,
        model=model,
        tokenizer=tokenizer,
        model_type=config.model_type,
        n_layers=int(text_config.num_hidden_layers),
        hidden_size=int(text_config.hidden_size),
        instruct=bool(getattr(tokenizer, "chat_template", None)) if instruct is None else instruct,
    )
