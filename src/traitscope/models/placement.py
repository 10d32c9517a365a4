"""Placing a model that does not fit one device: ``--device-map auto`` and ``--max-memory``,
through accelerate (transformers' ``device_map``). Layers that do not fit go to the next GPU, then
the CPU, then disk (weights stream in for each forward); traitscope's forward hooks see every
layer's output wherever it ran, and inputs go to the device of the input embeddings."""

from __future__ import annotations

import atexit
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

from traitscope.errors import TraitscopeError

DEVICE_MAPS = ("auto", "balanced", "balanced_low_0", "sequential")
_SIZE = re.compile(r"^\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KIB|MIB|GIB|TIB)?$", re.IGNORECASE)


def parse_max_memory(spec: str | None) -> dict[int | str, str] | None:
    """``'0=20GiB,cpu=60GiB'`` -> ``{0: '20GiB', 'cpu': '60GiB'}`` (devices: GPU index, cpu, disk)."""
    if spec is None or not spec.strip():
        return None
    out: dict[int | str, str] = {}
    for part in spec.split(","):
        device, sep, size = part.strip().partition("=")
        device, size = device.strip().lower(), size.strip()
        if not sep or not _SIZE.match(size) or not (device.isdigit() or device in ("cpu", "disk", "mps")):
            raise TraitscopeError(
                f"--max-memory {spec!r}: cannot read {part.strip()!r}; use DEVICE=SIZE pairs such as '0=20GiB,cpu=60GiB'"
            )
        out[int(device) if device.isdigit() else device] = size
    return out


def check_device_map(device_map: str | None) -> str | None:
    if device_map is not None and device_map not in DEVICE_MAPS:
        raise TraitscopeError(f"--device-map {device_map!r} is not valid; use one of: {', '.join(DEVICE_MAPS)}")
    return device_map


def placement_kwargs(device_map: str | None, max_memory: dict[int | str, str] | None, cache: Path) -> dict[str, Any]:
    """Keyword arguments for ``from_pretrained``; disk offload gets a folder under the cache."""
    if device_map is None and max_memory is None:
        return {}
    cache.mkdir(parents=True, exist_ok=True)
    offload = Path(tempfile.mkdtemp(prefix="offload-", dir=cache))
    atexit.register(shutil.rmtree, offload, ignore_errors=True)  # offloaded weights are a copy
    return {
        "device_map": check_device_map(device_map) or "auto",
        "max_memory": max_memory,
        "offload_folder": str(offload),
    }


def input_device(model: torch.nn.Module) -> torch.device:
    """Where inputs go: the input embeddings' execution device for a dispatched model, else the
    device of the first parameter."""
    device_map = getattr(model, "hf_device_map", None)
    if device_map:
        first = next(iter(device_map.values()))
        if isinstance(first, int):
            return torch.device("cuda", first)
        return torch.device("cpu" if first in ("cpu", "disk") else first)
    return next(model.parameters()).device


def offloaded(model: torch.nn.Module) -> dict[str, str | int]:
    """The parts of a dispatched model that are not on the first device ({} when not dispatched)."""
    device_map = getattr(model, "hf_device_map", None) or {}
    first = next(iter(device_map.values()), None)
    return {name: dev for name, dev in device_map.items() if dev != first or dev == "disk"}
