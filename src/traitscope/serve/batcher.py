"""Concurrent requests as rows of one batched generation.

A single worker thread owns the model. Requests wait in a bounded queue (full: 429); the worker
takes the oldest one and every waiting request that can share its decoding settings (greedy
rows always can; seeded sampling runs alone, so a seed repeats whatever else is queued), up to
``max_batch``, and runs them as one left-padded batch through the monitor engine's decoding loop
(:func:`traitscope.monitor.run_steps`). Steering is the per-row mechanism the sweeps use
(:func:`traitscope.steering.sweep.row_terms` under :func:`traitscope.steering.steer`: a row
without terms adds exact zeros), and monitoring is the engine's in-hook projections onto the
union of the rows' vectors, each row reading its own columns. Events go back to each request
through its ``emit`` callback as tokens are produced."""

from __future__ import annotations

import random
import threading
import time
from collections import deque
from collections.abc import Callable
from contextlib import closing, nullcontext
from dataclasses import dataclass, field
from typing import Any

import torch

from traitscope.generation import SamplingConfig
from traitscope.models.loader import LoadedModel
from traitscope.monitor import TraitVector, VectorBank, forced_monitored, run_steps
from traitscope.serve.protocol import ApiError
from traitscope.serve.resolve import RowPlan
from traitscope.serve.tokens import TokenText, first_stop, held_back, logprob_entry
from traitscope.steering import SteeringSpec, steer
from traitscope.steering.sweep import row_terms

Emit = Callable[[str, dict[str, Any]], None]


@dataclass
class Job:
    """One request: its prompt, decoding settings and plan; ``emit(event, data)`` receives
    ``token`` events and one final ``done`` (or ``error``)."""

    prompt_ids: list[int]
    max_tokens: int
    emit: Emit
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    stops: list[str] = field(default_factory=list)
    top_logprobs: int | None = None
    plan: RowPlan = field(default_factory=RowPlan)
    cancelled: threading.Event = field(default_factory=threading.Event)

    def key(self) -> tuple:
        """Jobs with equal keys may share a batch (as long as their monitor sites agree)."""
        if self.temperature <= 0:
            return ("greedy",)
        if self.seed is not None:
            return ("seeded", id(self))
        return ("sample", self.temperature, self.top_p)

    @property
    def site(self) -> str | None:
        return self.plan.monitor_site if self.plan.monitor else None


class Batcher:
    def __init__(self, lm: LoadedModel, max_batch: int = 16, max_queue: int = 64, gather_s: float = 0.02) -> None:
        self.lm = lm
        self.max_batch, self.max_queue, self.gather_s = max_batch, max_queue, gather_s
        self._pending: deque[Job] = deque()
        self._cond = threading.Condition()
        self._stopped = False
        self.batches: list[int] = []  # size of every batch run (for tests and benchmarks)
        self._thread = threading.Thread(target=self._loop, daemon=True, name="traitscope-batcher")
        self._thread.start()

    def submit(self, job: Job) -> None:
        with self._cond:
            if len(self._pending) >= self.max_queue:
                raise ApiError(
                    429,
                    f"the server is busy ({self.max_queue} requests waiting); retry later",
                    code="queue_full",
                    kind="rate_limit_error",
                )
            self._pending.append(job)
            self._cond.notify()

    def close(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        self._thread.join(timeout=30)

    def _take(self) -> list[Job]:
        with self._cond:
            while not self._stopped and not self._pending:
                self._cond.wait()
        time.sleep(self.gather_s)  # requests that arrive together join (costs a lone request 20 ms)
        with self._cond:
            while self._pending and self._pending[0].cancelled.is_set():
                self._pending.popleft()
            if not self._pending:
                return []
            key, site = self._pending[0].key(), self._pending[0].site
            jobs: list[Job] = []
            for job in self._pending:
                if len(jobs) == self.max_batch:
                    break
                if job.cancelled.is_set() or job.key() != key or (site and job.site and job.site != site):
                    continue
                jobs.append(job)
                site = site or job.site
            taken = {id(j) for j in jobs}
            self._pending = deque(j for j in self._pending if id(j) not in taken and not j.cancelled.is_set())
            return jobs

    def _loop(self) -> None:
        while not self._stopped:
            jobs = self._take()
            if not jobs:
                continue
            self.batches.append(len(jobs))
            try:
                run_batch(self.lm, jobs)
            except Exception as exc:  # a request must end with an answer, not silence
                for job in jobs:
                    job.emit("error", {"status": 500, "message": f"internal error: {type(exc).__name__}: {exc}"})


def condition_score(lm: LoadedModel, prompt_ids: list[int], tv: TraitVector, site: str) -> float:
    """Mean projection of the prompt's tokens (the first, an attention sink, left out) at the
    condition vector's layer, from one teacher-forced forward over the prompt."""
    mon = forced_monitored(lm, prompt_ids, [], VectorBank(site, [tv]))
    values = mon.dots[tv.layer][:, 0]
    values = values[1:] if len(values) > 1 else values
    return float(values.mean())


def _union_bank(plans: list[RowPlan]) -> tuple[VectorBank | None, dict[tuple[str, int], TraitVector]]:
    """One bank over every row's monitor vectors; a vector file + layer appears once."""
    names: dict[tuple[str, int], TraitVector] = {}
    for plan in plans:
        for tv in plan.monitor:
            key = (str(tv.provenance.get("file", tv.trait)), tv.layer)
            if key not in names:
                names[key] = TraitVector(f"v{len(names)}", tv.layer, tv.vector, tv.threshold)
    if not names:
        return None, names
    site = next(p.monitor_site for p in plans if p.monitor)
    return VectorBank(site or "residual", list(names.values())), names


class _Row:
    """One request's progress through the batch."""

    def __init__(self, job: Job, index: int, lm: LoadedModel, cols: dict[str, list[tuple[str, int, int]]]) -> None:
        self.job, self.b, self.lm = job, index, lm
        self.cols = cols  # public trait -> [(layer key, layer, column)]
        self.thresholds = {tv.trait: tv.threshold for tv in reversed(job.plan.monitor)}  # first layer's
        self.tokens: list[int] = []
        self.logprobs: list[dict[str, Any]] = []
        self.values: dict[str, dict[int, list[float]]] = {t: {} for t in cols}
        self.emitted = 0
        self.sent = ""
        self.cut = -1
        self.finish: str | None = None
        self.closed = False
        self.steered = False
        self.condition_score: float | None = None

    @property
    def monitored(self) -> bool:
        return bool(self.cols)

    def text(self, upto: int) -> str:
        text = self.lm.tokenizer.decode(self.tokens[:upto], skip_special_tokens=True)
        return text[: self.cut] if self.cut >= 0 else text

    def emit_tokens(self, values: dict[str, dict[int, float]] | None, final: bool) -> None:
        start, self.emitted = self.emitted, len(self.tokens)
        full = self.text(self.emitted)
        if not final:
            full = full.rstrip("\ufffd")
            full = full[: len(full) - held_back(full, self.job.stops)]
        delta = full[len(self.sent) :] if full.startswith(self.sent) else ""
        self.sent += delta
        data: dict[str, Any] = {"text": delta, "token_ids": self.tokens[start : self.emitted]}
        if values is not None:
            data["values"] = values
            data["thresholds"] = self.thresholds
        if self.job.top_logprobs is not None:
            data["logprobs"] = self.logprobs[start : self.emitted]
        if delta or data["token_ids"]:
            self.job.emit("token", data)

    def close(self) -> None:
        if self.closed:
            return
        self.emit_tokens(None, final=True)
        self.closed = True
        self.job.emit("done", self.summary())

    def summary(self) -> dict[str, Any]:
        scores: dict[str, Any] = {}
        for trait, by_layer in self.values.items():
            per_layer = {
                str(layer): {"per_token": v, "mean": (sum(v) / len(v)) if v else None} for layer, v in by_layer.items()
            }
            first = next(iter(per_layer))
            scores[trait] = {"layer": int(first), **per_layer[first], "threshold": self.thresholds[trait]}
            if len(per_layer) > 1:
                scores[trait]["layers"] = per_layer
        return {
            "text": self.text(len(self.tokens)),
            "finish_reason": self.finish or "length",
            "prompt_tokens": len(self.job.prompt_ids),
            "completion_tokens": len(self.tokens),
            "logprobs": self.logprobs if self.job.top_logprobs is not None else None,
            "traitscope": {"steered": self.steered, "condition_score": self.condition_score, "trait_scores": scores},
        }

    def read(self, dots: dict[int, torch.Tensor]) -> dict[str, dict[int, float]]:
        """This row's projections of the token fed in this step (column 0)."""
        out: dict[str, dict[int, float]] = {}
        for trait, cols in self.cols.items():
            for _, layer, j in cols:
                value = float(dots[layer][self.b, 0, j])
                self.values[trait].setdefault(layer, []).append(value)
                out.setdefault(trait, {})[layer] = value
        return out

    def sampled(self, token: int, logits: torch.Tensor | None, eos: set[int], token_text: TokenText) -> None:
        if token in eos:
            self.finish = "stop"
            self.close()
            return
        self.tokens.append(token)
        if self.job.top_logprobs is not None and logits is not None:
            logp = logits.float().log_softmax(-1).cpu()
            self.logprobs.append(logprob_entry(logp, token, self.job.top_logprobs, token_text))
        if self.job.stops:
            cut = first_stop(self.lm.tokenizer.decode(self.tokens, skip_special_tokens=True), self.job.stops)
            if cut >= 0:
                self.cut, self.finish = cut, "stop"
        if self.finish is None and len(self.tokens) >= self.job.max_tokens:
            self.finish = "length"
        if not self.monitored:
            if self.finish is not None:
                self.close()
            else:
                self.emit_tokens(None, final=False)


def _rows(lm: LoadedModel, jobs: list[Job]) -> tuple[list[_Row], VectorBank | None]:
    bank, names = _union_bank([j.plan for j in jobs])
    rows = []
    for b, job in enumerate(jobs):
        cols: dict[str, list[tuple[str, int, int]]] = {}
        for tv in job.plan.monitor:
            internal = names[(str(tv.provenance.get("file", tv.trait)), tv.layer)]
            j = [e.trait for e in bank.at(tv.layer)].index(internal.trait)  # type: ignore[union-attr]
            cols.setdefault(tv.trait, []).append((internal.trait, tv.layer, j))
        rows.append(_Row(job, b, lm, cols))
    return rows, bank


def _steering(lm: LoadedModel, rows: list[_Row]) -> Any:
    per_row = []
    for row in rows:
        plan, fires = row.job.plan, True
        if plan.condition is not None:
            row.condition_score = condition_score(
                lm, row.job.prompt_ids, plan.condition, plan.condition.provenance["site"]
            )
            score, threshold = row.condition_score, plan.condition_threshold
            fires = score <= threshold if plan.condition_below else score >= threshold
        terms = plan.terms if fires else []
        row.steered = bool(terms)
        per_row.append(terms)
    if not any(per_row):
        return nullcontext()
    dims = {site: lm.site_dim(site) for site in {t.site for terms in per_row for t in terms}}
    return steer(lm, SteeringSpec(row_terms(per_row, dims)))


def run_batch(lm: LoadedModel, jobs: list[Job]) -> None:
    """Generate every job as one row of a batch; events go out through each job's ``emit``."""
    rows, bank = _rows(lm, jobs)
    first = jobs[0]
    seed = first.seed if first.seed is not None else random.randrange(2**31)
    cfg = SamplingConfig(max(j.max_tokens for j in jobs), first.temperature, first.top_p, seed)
    eos, token_text = set(lm.eos_ids), TokenText(lm.tokenizer)
    with _steering(lm, rows), closing(run_steps(lm, [j.prompt_ids for j in jobs], bank, cfg)) as steps:
        for step in steps:
            for row in rows:
                if row.closed or row.job.cancelled.is_set():
                    row.closed = True
                    continue
                if step.kind != "prompt" and row.monitored and row.emitted < len(row.tokens):
                    row.emit_tokens(row.read(step.dots), final=False)
                    if row.finish is not None:
                        row.close()
                        continue
                if step.sampled is not None and row.finish is None:
                    logits = step.logits[row.b] if step.logits is not None else None
                    row.sampled(int(step.sampled[row.b]), logits, eos, token_text)
            if all(r.closed for r in rows):
                break
    for row in rows:  # rows cut by the end of the loop
        if not row.closed and not row.job.cancelled.is_set():
            row.finish = row.finish or "length"
            row.close()
