"""GGUF control vectors in the format repeng writes and llama.cpp's ``--control-vector`` reads:
architecture ``controlvector``, ``controlvector.model_hint`` and ``controlvector.layer_count``,
one float32 tensor ``direction.<N>`` per layer.

llama.cpp adds ``direction.N`` to the output of block N (0-based), which is traitscope's layer N,
and it cannot steer block 0 (``direction.0`` is rejected), so layer 0 is never exported."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from traitscope.errors import TraitscopeError
from traitscope.evaluation import best_row
from traitscope.specs import DEFAULT_POSITION, parse_layers
from traitscope.steering.spec import build_terms, check_ratio
from traitscope.store import RunDir
from traitscope.store.atomic import atomic_write_bytes
from traitscope.store.runs import load_evaluation, load_run_vectors

ARCH = "controlvector"


def export_control_vector(path: Path, directions: Mapping[int, torch.Tensor], model_hint: str) -> list[int]:
    """Write ``{layer: coef * v}`` as a GGUF control vector; returns the layers written."""
    import tempfile

    import gguf

    layers = sorted(layer for layer in directions if layer > 0)
    if not layers:
        raise TraitscopeError("no layer > 0 to export: llama.cpp control vectors cannot steer block 0")
    path = Path(path)
    with tempfile.TemporaryDirectory(dir=path.parent if path.parent.exists() else None) as tmp:
        tmp_file = Path(tmp) / "cv.gguf"
        writer = gguf.GGUFWriter(str(tmp_file), ARCH)
        writer.add_string(f"{ARCH}.model_hint", model_hint)
        writer.add_uint32(f"{ARCH}.layer_count", len(layers))
        for layer in layers:
            writer.add_tensor(f"direction.{layer}", directions[layer].detach().float().cpu().numpy().astype(np.float32))
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        atomic_write_bytes(path, tmp_file.read_bytes())
    return layers


def import_control_vector(path: Path) -> tuple[dict[int, torch.Tensor], str]:
    """``({layer: direction}, model_hint)`` from a GGUF control vector file."""
    import gguf

    try:
        reader = gguf.GGUFReader(str(path))
    except (OSError, ValueError) as exc:
        raise TraitscopeError(f"{path}: not a readable GGUF file ({exc})") from None
    fields = reader.fields
    arch_field = fields.get("general.architecture")
    arch = bytes(arch_field.parts[arch_field.data[0]]).decode() if arch_field else ""
    if arch != ARCH:
        raise TraitscopeError(f"{path}: GGUF architecture is {arch!r}, not {ARCH!r}")
    hint_field = fields.get(f"{ARCH}.model_hint")
    hint = bytes(hint_field.parts[hint_field.data[0]]).decode() if hint_field else ""
    out: dict[int, torch.Tensor] = {}
    for t in reader.tensors:
        if not t.name.startswith("direction."):
            continue
        out[int(t.name.split(".", 1)[1])] = torch.from_numpy(np.array(t.data, dtype=np.float32).reshape(-1))
    if not out:
        raise TraitscopeError(f"{path}: no direction.N tensors")
    return out, hint


def export_run_control_vector(
    run: RunDir,
    path: Path,
    method: str = "probe",
    position: str = DEFAULT_POSITION,
    layers: str = "best",
    ratio: float = 0.3,
) -> tuple[list[int], float]:
    """Export a run's residual vectors; ``ratio`` is the total, split evenly over the layers
    (llama.cpp adds them all). ``layers="best"`` takes the run's best residual layer.
    Returns (layers written, ratio per layer)."""
    check_ratio(ratio)
    vset = load_run_vectors(run, "residual", method, position)
    if layers == "best":
        chosen = [int(best_row(load_evaluation(run, position)["results"], "residual", method)["layer"])]
    else:
        chosen = [layer for layer in parse_layers(layers, vset.provenance.n_layers) if layer in vset.vectors]
    chosen = [layer for layer in chosen if layer > 0]
    if not chosen:
        raise TraitscopeError(f"--layers {layers!r}: no exportable layer (llama.cpp cannot steer block 0)")
    each = ratio / len(chosen)
    terms = [build_terms(vset, [layer], each, None, "single")[0] for layer in chosen]
    written = export_control_vector(path, {x.layer: x.coef * x.vector for x in terms}, vset.provenance.model_type)
    return written, each
