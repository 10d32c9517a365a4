"""What a model *is*, for run fingerprints: a name is not enough (a directory can be re-filled,
an alias re-cached from another file). Identity = config hash + weights hash (or hub revision).

Weight files are hashed once per (path, size, mtime) and the digest is kept in
``$TRAITSCOPE_CACHE/weight-hashes.json``, so a 7B model is not re-read on every run."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from traitscope.models.registry import cache_root
from traitscope.store.atomic import atomic_write_json

if TYPE_CHECKING:
    from traitscope.models.loader import LoadedModel

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".gguf")


def _short(data: bytes | str) -> str:
    return hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()[:16]


def config_hash(config: Any) -> str:
    """Hash of the architecture config, without path- or version-dependent keys."""
    d = {k: v for k, v in config.to_dict().items() if not k.startswith("_") and k != "transformers_version"}
    return _short(json.dumps(d, sort_keys=True, default=str))


def _file_hash(path: Path, memo: dict[str, Any]) -> str:
    st = path.stat()
    key = f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}"
    if key not in memo:
        with path.open("rb") as f:
            memo[key] = hashlib.file_digest(f, "sha256").hexdigest()[:16]
    return memo[key]


def weights_hash(directory: Path) -> str | None:
    """Combined hash of the weight files in ``directory`` (None when it holds none)."""
    files = sorted(p for p in Path(directory).iterdir() if p.suffix in WEIGHT_SUFFIXES and p.is_file())
    if not files:
        return None
    memo_path = cache_root() / "weight-hashes.json"
    try:
        memo = json.loads(memo_path.read_text())
    except (OSError, ValueError):
        memo = {}
    before = len(memo)
    digest = _short("".join(f"{p.name}:{_file_hash(p, memo)};" for p in files))
    if len(memo) != before:
        try:
            atomic_write_json(memo_path, memo)
        except OSError:
            pass  # a read-only cache only costs a re-hash next time
    return digest


def _parameters_hash(lm: LoadedModel) -> str:
    h = hashlib.sha256()
    for name, t in sorted(lm.model.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def model_identity(lm: LoadedModel) -> dict[str, str]:
    """``{"name", "config", "weights"}``; computed once per loaded model."""
    if "identity" not in lm.extra:
        source = Path(lm.source) if lm.source else None
        revision = getattr(lm.model.config, "_commit_hash", None)
        if source is not None and source.is_dir() and (w := weights_hash(source)):
            weights = w
        elif revision:
            weights = f"revision:{revision}"
        else:
            weights = f"params:{_parameters_hash(lm)}"
        ident = {"name": lm.name, "config": config_hash(lm.model.config), "weights": weights}
        ident.update({k: str(v) for k, v in lm.extra.get("identity_extra", {}).items()})
        lm.extra["identity"] = ident
    return dict(lm.extra["identity"])
