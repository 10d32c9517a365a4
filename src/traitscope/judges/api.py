"""The logprob-weighted judge over any OpenAI-compatible chat completions endpoint.

One request per prompt (temperature 0, ``max_tokens`` 1, ``top_logprobs`` 20); the score is the
probability-weighted mean of the top tokens that spell integers 0-100. Requests run on a thread
pool, transient failures (timeouts, connection errors, 429 and 5xx) are retried with
exponential backoff, and every parsed answer is cached on disk keyed by (endpoint, judge model, prompt hash).
Nothing here raises for a failed request: it becomes ``Score(None, reason)``.
"""

from __future__ import annotations

import json
import math
import os
import random
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

from traitscope.errors import TraitscopeError
from traitscope.judges.base import Pair, Score, one_line
from traitscope.judges.cache import ScoreCache, cache_key
from traitscope.judges.prompts import MIN_MASS, coherence_prompt, integer_value, trait_prompt, weighted_score
from traitscope.traits.schema import Trait

DEFAULT_JUDGE_MODEL = "gpt-4.1-mini"
TOP_LOGPROBS = 20


@dataclass(frozen=True)
class ApiConfig:
    base_url: str | None
    api_key: str | None
    model: str = DEFAULT_JUDGE_MODEL
    timeout: float = 60.0  # seconds per request
    max_tries: int = 4
    backoff: float = 1.0  # first retry waits about this long, then doubles
    concurrency: int = 8

    @classmethod
    def from_env(cls, **overrides: Any) -> ApiConfig:
        env = os.environ
        config = cls(
            base_url=env.get("TRAITSCOPE_JUDGE_BASE_URL") or env.get("OPENAI_BASE_URL") or None,
            api_key=env.get("TRAITSCOPE_JUDGE_API_KEY") or env.get("OPENAI_API_KEY") or None,
            model=env.get("TRAITSCOPE_JUDGE_MODEL") or DEFAULT_JUDGE_MODEL,
        )
        return replace(config, **overrides)

    def check(self) -> None:
        if not self.base_url and not self.api_key:
            raise TraitscopeError(
                "the api judge is not configured: set TRAITSCOPE_JUDGE_BASE_URL (any OpenAI-compatible server) "
                "and/or TRAITSCOPE_JUDGE_API_KEY (or OPENAI_API_KEY), or use --judge default for offline judging"
            )


class _Unparsed(Exception):
    """A response arrived but could not be read as a completion with logprobs (never cached)."""


def score_from_completion(body: dict[str, Any], min_mass: float = MIN_MASS) -> Score:
    """Read choices[0].logprobs.content[0].top_logprobs of a chat completion into a Score."""
    try:
        content = body["choices"][0]["logprobs"]["content"]
        top = content[0]["top_logprobs"]
    except (KeyError, IndexError, TypeError):
        raise _Unparsed("judge response has no logprobs (does the server support logprobs=true?)") from None
    if not isinstance(top, list) or not top:
        raise _Unparsed("judge response has an empty top_logprobs list")
    candidates: list[tuple[int, float]] = []
    for item in top:
        try:
            value = integer_value(str(item["token"]))
            logprob = float(item["logprob"])
        except (KeyError, TypeError, ValueError):
            raise _Unparsed("judge response has a malformed top_logprobs entry") from None
        if value is not None and math.isfinite(logprob):
            candidates.append((value, math.exp(logprob)))
    return weighted_score(candidates, min_mass)


class ApiJudge:
    def __init__(
        self, config: ApiConfig | None = None, cache: ScoreCache | None = None, use_cache: bool = True
    ) -> None:
        import openai

        self.config = config or ApiConfig.from_env()
        self.config.check()
        self.name = f"api:{self.config.model}"
        self.cache = (cache if cache is not None else ScoreCache()) if use_cache else None
        # The client's own retries are off: ours are bounded and count every kind of failure.
        self._client = openai.OpenAI(
            base_url=self.config.base_url,
            api_key=self.config.api_key or "not-needed",  # local servers ignore the key
            timeout=self.config.timeout,
            max_retries=0,
        )

    # -- one request ---------------------------------------------------------------------------
    def _request(self, prompt: str) -> dict[str, Any]:
        """POST one completion; returns the decoded JSON body or raises (openai errors, _Unparsed)."""
        raw = self._client.chat.completions.with_raw_response.create(
            model=self.config.model,
            messages=[{"role": "user", "content": prompt}],
            temperature=0,
            max_tokens=1,
            logprobs=True,
            top_logprobs=TOP_LOGPROBS,
        )
        text = raw.http_response.text
        try:
            body = json.loads(text)
        except json.JSONDecodeError:
            raise _Unparsed(f"judge response is not valid JSON: {text[:60]!r}") from None
        if not isinstance(body, dict):
            raise _Unparsed(f"judge response is JSON but not an object: {text[:60]!r}")
        return body

    def _score_prompt(self, prompt: str) -> Score:
        import openai

        key = cache_key(self.config.base_url, self.config.model, prompt)
        if self.cache is not None and (hit := self.cache.get(key)) is not None:
            return hit
        last = "no attempt made"
        for attempt in range(1, self.config.max_tries + 1):
            try:
                score = score_from_completion(self._request(prompt))
            except _Unparsed as exc:
                return Score(None, one_line(exc))
            except openai.APITimeoutError:
                last = f"timed out after {self.config.timeout:g} s"
            except openai.APIConnectionError as exc:
                last = f"connection failed ({one_line(exc.__cause__ or exc, 80)})"
            except openai.APIStatusError as exc:
                last = f"HTTP {exc.status_code}"
                if exc.status_code < 500 and exc.status_code != 429:  # the request itself is wrong: don't retry
                    return Score(None, one_line(f"judge returned HTTP {exc.status_code}: {_error_message(exc)}"))
            except openai.OpenAIError as exc:  # anything else the client raises: report, never propagate
                return Score(None, one_line(f"judge request failed: {type(exc).__name__}: {exc}"))
            else:
                if self.cache is not None:
                    self.cache.put(key, score, self.config.model, self.config.base_url)
                return score
            if attempt < self.config.max_tries:
                # exponential backoff with jitter so parallel workers don't retry in lockstep
                time.sleep(self.config.backoff * 2 ** (attempt - 1) * (0.5 + random.random()))
        return Score(None, one_line(f"judge request failed after {self.config.max_tries} tries: {last}"))

    # -- batches -------------------------------------------------------------------------------
    def score_prompts(self, prompts: Sequence[str]) -> list[Score]:
        unique = list(dict.fromkeys(prompts))
        workers = max(1, min(self.config.concurrency, len(unique)))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            scores = dict(zip(unique, pool.map(self._score_prompt, unique), strict=True))
        return [scores[p] for p in prompts]

    def score_trait(self, trait: Trait, pairs: Sequence[Pair]) -> list[Score]:
        return self.score_prompts([trait_prompt(trait, q, a) for q, a in pairs])

    def score_coherence(self, pairs: Sequence[Pair]) -> list[Score]:
        return self.score_prompts([coherence_prompt(q, a) for q, a in pairs])


def _error_message(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])
        if isinstance(err, str):
            return err
    return str(getattr(exc, "message", "") or exc)
