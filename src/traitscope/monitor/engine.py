"""Monitored generation: per-token projections computed inside forward hooks, exactly 1:1 with
tokens, without ever holding full activations.

The decoding loop is our own (greedy or seeded sampling over a KV cache) rather than
``model.generate`` so every forward's tokens are known: the prefill forward covers the
left-padded prompt, step ``j`` feeds response token ``j - 1``, and when a row stops at
``max_new_tokens`` (not at EOS) its last token has not been read yet, so one extra forward
runs through the decoder body only (stopped after the last monitored layer, no LM head). Each
hook reduces its ``[batch, tokens, dim]`` output to ``[batch, tokens, k]`` dot products with the
``k`` unit vectors at that layer plus ``[batch, tokens]`` norms, on the device; values move to
the CPU once at the end (or per token when streaming).

Intervention hooks (steering) given as ``{(site, layer): fn}`` are attached before the monitor's
own, so the monitor reads the activations the model actually ran with.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Mapping, Sequence
from contextlib import closing
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from traitscope.errors import TraitscopeError
from traitscope.generation import SamplingConfig
from traitscope.hooks import StopForward, hooked, stop_after
from traitscope.hooks.core import HookFn, SiteKey
from traitscope.models.loader import LoadedModel
from traitscope.monitor.trace import SCHEMA, IncrementalDecoder, _r, now_iso, summarise, token_texts
from traitscope.monitor.vectors import VectorBank
from traitscope.prompts import Prompt

Interventions = Mapping[SiteKey, HookFn | list[HookFn]]


# The monitor decodes with its own loop but takes the same settings as `generate_ids`.


class Recorder:
    """One read-only hook per monitored layer; each forward appends ``dots`` [B, T, k] and
    ``norms`` [B, T] per layer."""

    def __init__(self, bank: VectorBank | None, device: torch.device) -> None:
        self.bank = bank
        layers = bank.layers if bank is not None else []
        self.mats = {layer: bank.matrix(layer).to(device) for layer in layers} if bank is not None else {}
        self.dots: dict[int, list[torch.Tensor]] = {layer: [] for layer in layers}
        self.norms: dict[int, list[torch.Tensor]] = {layer: [] for layer in layers}

    def _hook(self, layer: int) -> HookFn:
        mat, dots, norms = self.mats[layer], self.dots[layer], self.norms[layer]

        def record(h: torch.Tensor) -> None:
            hf = h.float()  # no-op in float32; bf16 models are projected in float32
            dots.append(hf @ mat)
            norms.append(torch.linalg.vector_norm(hf, dim=-1))

        return record

    def hooks(self, interventions: Interventions | None = None) -> dict[SiteKey, list[HookFn]]:
        """Intervention hooks first, then the recorder's: later hooks see earlier replacements."""
        merged: dict[SiteKey, list[HookFn]] = {}
        for key, fn in (interventions or {}).items():
            merged.setdefault(key, []).extend(fn if isinstance(fn, list) else [fn])
        for layer in self.mats:
            merged.setdefault((self.bank.site, layer), []).append(self._hook(layer))  # type: ignore[union-attr]
        return merged

    def take(self) -> tuple[dict[int, torch.Tensor], dict[int, torch.Tensor]]:
        """What the forwards since the last call recorded, joined along tokens; then cleared."""
        dots = {layer: torch.cat(v, dim=1) for layer, v in self.dots.items()}
        norms = {layer: torch.cat(v, dim=1) for layer, v in self.norms.items()}
        for v in (*self.dots.values(), *self.norms.values()):
            v.clear()
        return dots, norms


@dataclass
class Step:
    """One forward of the loop: ``columns`` new token positions per row (the prefill has the
    padded prompt width, later steps 1); ``fed`` the tokens read ([B, columns]); ``sampled``
    the tokens chosen from its logits ([B], None for the body-only final forward); ``logits``
    those next-token logits ([B, vocab], None for the final forward)."""

    kind: str  # "prompt" | "token" | "final"
    fed: torch.Tensor
    dots: dict[int, torch.Tensor]
    norms: dict[int, torch.Tensor]
    sampled: torch.Tensor | None
    done: torch.Tensor  # [B] bool: rows finished (EOS sampled) after this step
    logits: torch.Tensor | None = None


def _pick(logits: torch.Tensor, cfg: SamplingConfig, gen: torch.Generator | None) -> torch.Tensor:
    if cfg.temperature <= 0:
        return logits.argmax(-1)
    probs = torch.softmax(logits.float() / cfg.temperature, dim=-1)
    if cfg.top_p < 1:
        sorted_p, order = probs.sort(dim=-1, descending=True)
        keep = sorted_p.cumsum(-1) - sorted_p < cfg.top_p  # always keeps the top token
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_p * keep)
    return torch.multinomial(probs, 1, generator=gen).squeeze(-1)


def run_steps(
    lm: LoadedModel,
    prompt_rows: Sequence[Sequence[int]],
    bank: VectorBank | None,
    cfg: SamplingConfig = SamplingConfig(),
    interventions: Interventions | None = None,
) -> Iterator[Step]:
    """The monitored decoding loop over a batch of prompt token ids; yields one :class:`Step`
    per forward. Hooks are attached only while the generator runs and removed when it ends or is
    closed. With ``bank=None`` nothing is recorded (plain, possibly steered, decoding)."""
    cfg.validate()
    if not prompt_rows or any(len(r) == 0 for r in prompt_rows):
        raise TraitscopeError("every prompt needs at least one token")
    device = lm.device
    eos = torch.tensor(lm.eos_ids, device=device)
    ids, mask = lm.left_pad(prompt_rows)
    pos = (mask.cumsum(-1) - 1).clamp_min(0)  # left padding: real tokens keep positions 0..n-1
    gen = torch.Generator(device=device).manual_seed(cfg.seed) if cfg.temperature > 0 else None
    rec = Recorder(bank, device)
    done = torch.zeros(len(prompt_rows), dtype=torch.bool, device=device)
    forward = _Forward(lm)
    with torch.inference_mode(), hooked(lm, rec.hooks(interventions)):
        logits = forward(ids, mask, pos)
        fed, kind = ids, "prompt"
        for step in range(cfg.max_new_tokens):
            nxt = torch.where(done, torch.full_like(done, lm.pad_id, dtype=torch.long), _pick(logits, cfg, gen))
            done = done | torch.isin(nxt, eos)
            dots, norms = rec.take()
            yield Step(kind, fed, dots, norms, nxt, done.clone(), logits)
            if bool(done.all()) or step == cfg.max_new_tokens - 1:
                break
            fed, kind = nxt[:, None], "token"
            mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
            pos = pos[:, -1:] + 1
            logits = forward(fed, mask, pos)
        if bool(done.all()) or bank is None:
            return
        # Rows that hit max_new_tokens have not read their last token: one body-only forward.
        fed = nxt[:, None]
        mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
        try:
            with stop_after(lm, max(bank.layers)):
                forward(fed, mask, pos[:, -1:] + 1)
        except StopForward:
            pass
        dots, norms = rec.take()
        yield Step("final", fed, dots, norms, None, done.clone())


class _Forward:
    """One cached forward that returns the last position's logits. Knows the transformers
    version's names: the cache argument is ``cache`` in recent releases (``past_key_values``
    before), and ``logits_to_keep=1`` spares the LM head over the whole prompt."""

    def __init__(self, lm: LoadedModel) -> None:
        params = inspect.signature(lm.model.forward).parameters
        self.model = lm.model
        self.cache_kw = "cache" if "cache" in params else "past_key_values"
        self.extra = {"logits_to_keep": 1} if "logits_to_keep" in params else {}
        self.cache: Any = None

    def __call__(self, ids: torch.Tensor, mask: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        kwargs = {self.cache_kw: self.cache} if self.cache is not None else {}
        out = self.model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True, **kwargs, **self.extra)
        cache = getattr(out, "cache", None)
        self.cache = cache if cache is not None else out.past_key_values
        return out.logits[:, -1]


@dataclass
class Monitored:
    """Raw per-row results before they become a trace: ids, boundary, [n, k] dots per layer."""

    prompt_ids: list[int]
    response_ids: list[int]
    dots: dict[int, torch.Tensor]  # layer -> [n_tokens, k] (k = vectors at that layer)
    norms: dict[int, torch.Tensor]  # layer -> [n_tokens]
    stop: str  # "eos" | "max_new_tokens" | "teacher_forced"
    meta: dict[str, Any] = field(default_factory=dict)


def generate_monitored(
    lm: LoadedModel,
    prompt_rows: Sequence[Sequence[int]],
    bank: VectorBank,
    cfg: SamplingConfig = SamplingConfig(),
    interventions: Interventions | None = None,
) -> list[Monitored]:
    """Generate for a batch and return, per row, every token's projections (prompt and response)."""
    steps = list(run_steps(lm, prompt_rows, bank, cfg, interventions))
    width = steps[0].fed.shape[1]
    sampled = torch.stack([s.sampled for s in steps if s.sampled is not None], dim=1).cpu()  # [B, n_steps]
    dots = {layer: torch.cat([s.dots[layer] for s in steps], dim=1).cpu() for layer in bank.layers}
    norms = {layer: torch.cat([s.norms[layer] for s in steps], dim=1).cpu() for layer in bank.layers}
    eos = set(lm.eos_ids)
    results = []
    for b, row in enumerate(prompt_rows):
        tokens = sampled[b].tolist()
        cut = next((i for i, t in enumerate(tokens) if t in eos), None)
        response = tokens if cut is None else tokens[:cut]
        cols = slice(width - len(row), width + len(response))
        results.append(
            Monitored(
                prompt_ids=list(row),
                response_ids=response,
                dots={layer: d[b, cols] for layer, d in dots.items()},
                norms={layer: n[b, cols] for layer, n in norms.items()},
                stop="max_new_tokens" if cut is None else "eos",
            )
        )
    return results


def forced_monitored(
    lm: LoadedModel,
    prompt_ids: Sequence[int],
    response_ids: Sequence[int],
    bank: VectorBank,
    interventions: Interventions | None = None,
) -> Monitored:
    """Teacher-forced: one forward over prompt + a given response (e.g. another model's text)."""
    ids = list(prompt_ids) + list(response_ids)
    if not prompt_ids:
        raise TraitscopeError("the prompt has no tokens")
    rec = Recorder(bank, lm.device)
    x = torch.tensor([ids], device=lm.device)
    with torch.inference_mode(), hooked(lm, rec.hooks(interventions)):
        try:
            with stop_after(lm, max(bank.layers)):  # later blocks and the LM head are not needed
                lm.model(input_ids=x, attention_mask=torch.ones_like(x), use_cache=False)
        except StopForward:
            pass
    dots, norms = rec.take()
    return Monitored(
        prompt_ids=list(prompt_ids),
        response_ids=list(response_ids),
        dots={layer: d[0].cpu() for layer, d in dots.items()},
        norms={layer: n[0].cpu() for layer, n in norms.items()},
        stop="teacher_forced",
    )


def build_trace(
    lm: LoadedModel,
    bank: VectorBank,
    prompt: Prompt,
    mon: Monitored,
    prompt_set: str = "adhoc",
    gen: SamplingConfig | None = None,
    interventions: Interventions | None = None,
) -> dict[str, Any]:
    """The JSON trace of one prompt (schema in :mod:`traitscope.monitor.trace`)."""
    from traitscope import __version__

    ids = mon.prompt_ids + mon.response_ids
    boundary = len(mon.prompt_ids)
    projections: dict[str, dict[str, list[float]]] = {t: {} for t in bank.traits}
    cosines: dict[str, dict[str, list[float]]] = {t: {} for t in bank.traits}
    summaries: dict[str, dict[str, Any]] = {t: {} for t in bank.traits}
    for layer in bank.layers:
        norm = mon.norms[layer]
        for j, entry in enumerate(bank.at(layer)):
            dot = mon.dots[layer][:, j]
            proj, cos = _r(dot.tolist()), _r((dot / norm.clamp_min(1e-12)).tolist())
            projections[entry.trait][str(layer)] = proj
            cosines[entry.trait][str(layer)] = cos
            summaries[entry.trait][str(layer)] = summarise(proj, cos, boundary, entry.threshold) | {
                "threshold_source": entry.threshold_source
            }
    vectors = {}
    for t in bank.traits:
        entries = [bank.get(t, layer) for layer in bank.layers_of(t)]
        vectors[t] = {
            **entries[0].provenance,
            "layers": [e.layer for e in entries],
            "thresholds": {str(e.layer): e.threshold for e in entries},
        }
    return {
        "schema": SCHEMA,
        "id": prompt.id,
        "prompt_set": prompt_set,
        "prompt": prompt.text,
        "system": prompt.system,
        "response": lm.tokenizer.decode(mon.response_ids, skip_special_tokens=True),
        "mode": "teacher_forced" if mon.stop == "teacher_forced" else "generate",
        "model": lm.name,
        "site": bank.site,
        "layers": bank.layers,
        "n_tokens": len(ids),
        "boundary": boundary,
        "tokens": token_texts(lm.tokenizer, ids),
        "token_ids": ids,
        "projections": projections,
        "cosines": cosines,
        "norms": {str(layer): _r(mon.norms[layer].tolist()) for layer in bank.layers},
        "summaries": summaries,
        "vectors": vectors,
        "generation": {**(asdict(gen) if gen and mon.stop != "teacher_forced" else {}), "stop": mon.stop},
        "interventions": [f"{site}/{layer}" for site, layer in (interventions or {})],
        "created": now_iso(),
        "traitscope_version": __version__,
    }


def prompt_token_ids(lm: LoadedModel, prompt: Prompt) -> list[int]:
    if not prompt.text.strip():
        raise TraitscopeError(f"prompt {prompt.id!r} is empty; give some text to monitor")
    return lm.prompt_ids(prompt.text, prompt.system)


def monitor_prompts(
    lm: LoadedModel,
    prompts: Sequence[Prompt],
    bank: VectorBank,
    cfg: SamplingConfig = SamplingConfig(),
    prompt_set: str = "adhoc",
    interventions: Interventions | None = None,
    batch_size: int = 8,
) -> list[dict[str, Any]]:
    """Traces for a list of prompts: generated (in batches), or teacher-forced where a prompt
    carries a ``response``."""
    bank.check_dim(lm)
    rows = [prompt_token_ids(lm, p) for p in prompts]  # every prompt checked before any work
    traces: list[dict[str, Any] | None] = [None] * len(prompts)
    todo = [i for i, p in enumerate(prompts) if p.response is None]
    for i, p in enumerate(prompts):
        if p.response is not None:
            mon = forced_monitored(lm, rows[i], lm.response_ids(p.response), bank, interventions)
            traces[i] = build_trace(lm, bank, p, mon, prompt_set, None, interventions)
    for start in range(0, len(todo), batch_size):
        chunk = todo[start : start + batch_size]
        for i, mon in zip(
            chunk, generate_monitored(lm, [rows[i] for i in chunk], bank, cfg, interventions), strict=True
        ):
            traces[i] = build_trace(lm, bank, prompts[i], mon, prompt_set, cfg, interventions)
    return [t for t in traces if t is not None]


def stream_prompt(
    lm: LoadedModel,
    prompt: Prompt,
    bank: VectorBank,
    cfg: SamplingConfig = SamplingConfig(),
    interventions: Interventions | None = None,
) -> Iterator[dict[str, Any]]:
    """Token events for one prompt as they are computed: first every prompt token, then each
    response token once its own forward has run (one step after it was sampled). Each event:
    ``{"index", "id", "text", "region": "prompt"|"response", "projections": {trait: {layer: v}},
    "cosines": {...}, "norms": {layer: v}}``; the last event is ``{"done": True, "stop": ...}``."""
    bank.check_dim(lm)
    row = prompt_token_ids(lm, prompt)
    decoder = IncrementalDecoder(lm.tokenizer)
    eos = set(lm.eos_ids)
    index, stop = 0, "max_new_tokens"
    # closing(): leaving early (EOS, or a consumer that stops) detaches the hooks right away
    with closing(run_steps(lm, [row], bank, cfg, interventions)) as steps:
        for step in steps:
            region = "prompt" if step.kind == "prompt" else "response"
            for col, token in enumerate(step.fed[0].tolist()):
                yield _event(bank, step, col, index, token, decoder.push(token), region)
                index += 1
            if step.sampled is not None and int(step.sampled[0]) in eos:
                stop = "eos"
                break
    yield {"done": True, "stop": stop, "n_tokens": index, "boundary": len(row)}


def _event(bank: VectorBank, step: Step, col: int, index: int, token: int, text: str, region: str) -> dict[str, Any]:
    proj: dict[str, dict[str, float]] = {}
    cos: dict[str, dict[str, float]] = {}
    norms: dict[str, float] = {}
    for layer in bank.layers:
        d = step.dots[layer][0, col].float().cpu()
        n = float(step.norms[layer][0, col])
        norms[str(layer)] = float(f"{n:.7g}")
        for j, entry in enumerate(bank.at(layer)):
            proj.setdefault(entry.trait, {})[str(layer)] = float(f"{float(d[j]):.7g}")
            cos.setdefault(entry.trait, {})[str(layer)] = float(f"{float(d[j]) / max(n, 1e-12):.7g}")
    return {
        "index": index,
        "id": token,
        "text": text,
        "region": region,
        "projections": proj,
        "cosines": cos,
        "norms": norms,
    }
