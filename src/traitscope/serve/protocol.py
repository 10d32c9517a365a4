"""The wire format: OpenAI chat-completion requests, traitscope's own ``traitscope`` request field,
and OpenAI-shaped errors whose ``param`` names the offending field (``traitscope.steer[0].trait``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Literal

from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

MAX_TOP_LOGPROBS = 20
MAX_STEER_TERMS = 8
MAX_MONITOR_TRAITS = 8
MAX_SEED = 2**63 - 1


class ApiError(Exception):
    """Any request the server refuses: answered as ``{"error": {message, type, param, code}}``."""

    def __init__(
        self,
        status: int,
        message: str,
        param: str | None = None,
        code: str | None = None,
        kind: str = "invalid_request_error",
    ) -> None:
        super().__init__(message)
        self.status, self.param, self.code, self.kind = status, param, code, kind

    def body(self) -> dict[str, Any]:
        return {"error": {"message": str(self), "type": self.kind, "param": self.param, "code": self.code}}

    def response(self, headers: dict[str, str] | None = None) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=headers)


def bad(message: str, param: str | None = None, code: str | None = None) -> ApiError:
    return ApiError(400, message, param, code)


def param_path(loc: Sequence[Any]) -> str | None:
    """``("body", "traitscope", "steer", 0, "trait")`` -> ``traitscope.steer[0].trait``."""
    out = ""
    for part in loc:
        if part == "body" and not out:
            continue
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or None


# -- OpenAI chat completions ------------------------------------------------------------------
class ContentPart(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: str = "text"
    text: str = ""


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[ContentPart] | None = None

    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(p.text for p in self.content if p.type == "text")


# -- the traitscope field ---------------------------------------------------------------------
class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# names that become path segments under the run root: plain names only
NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"


class SteerOption(_Strict):
    """One steering term, as ``traitscope steer`` takes it."""

    trait: str = Field(min_length=1, max_length=200, pattern=NAME)
    layers: str | int = "30%"
    ratio: float | None = None
    coef: float | None = None
    mode: Literal["weighted", "orthogonal"] = "weighted"
    method: str = Field(default="probe", max_length=100, pattern=NAME)
    site: str = Field(default="residual", max_length=100)
    position: str = Field(default="response[:]", max_length=100)


class MonitorOption(_Strict):
    traits: list[Annotated[str, Field(min_length=1, max_length=200, pattern=NAME)]] = Field(min_length=1)
    layers: str | int = "best"  # each trait's best layer, or a layer spec
    method: str = Field(default="probe", max_length=100, pattern=NAME)
    site: str = Field(default="residual", max_length=100)
    position: str = Field(default="response[:]", max_length=100)


class ConditionOption(_Strict):
    """CAST-style condition: steer only when the prompt's mean projection on ``trait`` (at
    ``layer``, default its best) is >= ``threshold`` (<= with ``below``); the default threshold is
    the trait's class midpoint from its extraction rollouts."""

    trait: str = Field(min_length=1, max_length=200, pattern=NAME)
    threshold: float | None = None
    layer: int | None = None
    below: bool = False
    method: str = Field(default="probe", max_length=100, pattern=NAME)
    site: str = Field(default="residual", max_length=100)
    position: str = Field(default="response[:]", max_length=100)


class TraitscopeOptions(_Strict):
    steer: list[SteerOption] = Field(default_factory=list)
    monitor: MonitorOption | None = None
    condition: ConditionOption | None = None


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")  # unknown OpenAI options are accepted and ignored
    model: str | None = None
    messages: list[ChatMessage] = Field(min_length=1)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    logprobs: bool | None = False
    top_logprobs: int | None = Field(default=None, ge=0, le=MAX_TOP_LOGPROBS)
    seed: int | None = Field(default=None, ge=0, le=MAX_SEED)
    stop: str | list[str] | None = None
    n: int | None = Field(default=None, ge=1, le=1)
    stream: bool | None = False
    stream_options: dict[str, Any] | None = None
    traitscope: TraitscopeOptions | None = None

    def stops(self) -> list[str]:
        return [self.stop] if isinstance(self.stop, str) else [s for s in (self.stop or []) if s]
