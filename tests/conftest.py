"""Shared fixtures: the real bundled models, loaded once per test session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

OUTPUT = Path(__file__).parent / "output"


@pytest.fixture(scope="session")
def lm():
    """The default bundled model (SmolLM2-135M-Instruct, de-quantised once and cached)."""
    from traitscope.models import load_model

    return load_model("smollm2-135m-instruct")


@pytest.fixture(scope="session")
def base_lm():
    """The bundled base model (gemma-3-270m)."""
    from traitscope.models import load_model

    return load_model("gemma3-270m")


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread for a module: OpenMP spin-waits on the shared 2-core box, one thread is fast
    whatever the load. Modules opt in with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def output_dir() -> Path:
    OUTPUT.mkdir(exist_ok=True)
    return OUTPUT


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    # Nothing may reach a model hub in tests.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    yield


def pytest_configure(config):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
