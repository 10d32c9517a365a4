"""Resumable LoRA training state: ``<out>/checkpoint-<step>/`` holds the adapter weights and the
optimizer moments (safetensors) and ``state.json`` (step, fingerprint, param groups).

A checkpoint is written to a temporary folder and renamed into place, so a kill never leaves a
half-written one; older checkpoints are removed once a newer one is complete.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from traitscope.errors import TraitscopeError

PREFIX = "checkpoint-"


def _optimizer_tensors(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], list[dict[str, Any]]]:
    sd = opt.state_dict()
    tensors = {
        f"{idx}.{key}": torch.as_tensor(val).detach().cpu().contiguous()
        for idx, st in sd["state"].items()
        for key, val in st.items()
    }
    return tensors, sd["param_groups"]


def save_checkpoint(
    out: Path, step: int, adapter: dict[str, torch.Tensor], opt: torch.optim.Optimizer, fingerprint: dict[str, Any]
) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".checkpoint-", dir=out))
    try:
        save_file({k: v.detach().cpu().contiguous() for k, v in adapter.items()}, str(tmp / "adapter.safetensors"))
        tensors, groups = _optimizer_tensors(opt)
        save_file(tensors, str(tmp / "optimizer.safetensors"))
        state = {"step": step, "fingerprint": fingerprint, "param_groups": groups}
        (tmp / "state.json").write_text(json.dumps(state, indent=2))
        final = out / f"{PREFIX}{step:06d}"
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    for old in checkpoints(out)[:-1]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def checkpoints(out: Path) -> list[Path]:
    """Complete checkpoints, oldest first."""
    if not out.is_dir():
        return []
    return sorted(p for p in out.glob(f"{PREFIX}*") if (p / "state.json").is_file())


def load_checkpoint(path: Path, opt: torch.optim.Optimizer) -> tuple[int, dict[str, torch.Tensor]]:
    """Restore the optimizer in place; return the step and the adapter weights."""
    try:
        state = json.loads((path / "state.json").read_text())
        adapter = load_file(str(path / "adapter.safetensors"))
        flat = load_file(str(path / "optimizer.safetensors"))
    except (OSError, ValueError) as exc:
        raise TraitscopeError(f"{path}: damaged checkpoint ({exc.__class__.__name__}); delete it to restart") from None
    per_param: dict[int, dict[str, torch.Tensor]] = {}
    for key, val in flat.items():
        idx, name = key.split(".", 1)
        per_param.setdefault(int(idx), {})[name] = val
    opt.load_state_dict({"state": per_param, "param_groups": state["param_groups"]})
    return int(state["step"]), adapter


def checkpoint_fingerprint(path: Path) -> dict[str, Any]:
    return json.loads((path / "state.json").read_text())["fingerprint"]
