"""Hook sites, capture and intervention on the real bundled models and on tiny random models of
every other family in the site table (built from a config: no download)."""

import json
import subprocess
import sys

import pytest
import torch

from traitscope.activations import Example, capture
from traitscope.errors import TraitscopeError
from traitscope.hooks import active_hook_count, hooked
from traitscope.models import SITE_TABLES, SITES, site_table, wrap_model
from traitscope.models.loader import MANIFEST, _manifest_ok


def _check_sites(lm, n_tokens=5):
    ids = torch.arange(3, 3 + n_tokens).unsqueeze(0)
    shapes = {}

    def grab(key):
        def fn(h):
            shapes[key] = tuple(h.shape)

        return fn

    fns = {(s, layer): grab((s, layer)) for s in SITES for layer in (0, lm.n_layers - 1)}
    with torch.no_grad(), hooked(lm, fns):
        out = lm.model(input_ids=ids, output_hidden_states=True)
    for (s, _layer), shape in shapes.items():
        assert shape[:2] == (1, n_tokens)
        assert shape[2] == lm.site_dim(s)
    assert len(shapes) == len(fns)
    # layer i's block output equals hidden_states[i + 1] (the documented convention)
    res = {}
    with torch.no_grad(), hooked(lm, {("residual", 0): lambda h: res.setdefault(0, h.clone())}):
        lm.model(input_ids=ids)
    assert torch.allclose(res[0], out.hidden_states[1], atol=1e-5)
    assert active_hook_count(lm) == 0


def test_bundled_instruct_sites(lm):
    assert lm.model_type == "llama" and lm.n_layers == 30 and lm.hidden_size == 576
    _check_sites(lm)


@pytest.mark.slow
def test_bundled_base_sites(base_lm):
    assert base_lm.model_type == "gemma3_text" and base_lm.n_layers == 18 and base_lm.hidden_size == 640
    assert not base_lm.instruct
    _check_sites(base_lm)


def _tiny(model_type):
    from transformers import AutoConfig, AutoModelForCausalLM

    kw = dict(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=128,
        head_dim=8,
        max_position_embeddings=64,
    )
    if model_type == "gemma3":
        cfg = AutoConfig.for_model(
            "gemma3",
            text_config=dict(**kw),
            vision_config=dict(
                hidden_size=16,
                intermediate_size=32,
                num_hidden_layers=1,
                num_attention_heads=2,
                image_size=28,
                patch_size=14,
            ),
        )
    else:
        cfg = AutoConfig.for_model(model_type, **kw)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(cfg)
    return wrap_model(model, tokenizer=None, name=f"tiny-{model_type}", instruct=False)


@pytest.mark.parametrize("model_type", sorted(t for t in SITE_TABLES if t != "llama"))
def test_every_family_in_site_table(model_type):
    try:
        lm = _tiny(model_type)
    except (ValueError, KeyError, TypeError) as exc:  # pragma: no cover - depends on transformers version
        pytest.skip(f"transformers cannot build a {model_type} from a config here: {exc}")
    _check_sites(lm)


def test_unknown_family_is_a_clear_error():
    with pytest.raises(TraitscopeError, match="'gpt2' has no hook-site table"):
        site_table("gpt2")


def test_capture_and_identity_intervention_leave_logits_unchanged(lm):
    ids = torch.tensor([lm.prompt_ids("Tell me about the sea.")])
    with torch.no_grad():
        plain = lm.model(input_ids=ids).logits
        with hooked(lm, {(s, layer): (lambda h: None) for s in SITES for layer in range(lm.n_layers)}):
            captured = lm.model(input_ids=ids).logits
        with hooked(lm, {(s, layer): (lambda h: h.clone()) for s in SITES for layer in range(lm.n_layers)}):
            identity = lm.model(input_ids=ids).logits
    assert torch.equal(plain, captured)
    assert torch.equal(plain, identity)
    assert active_hook_count(lm) == 0


def test_hooks_are_removed_after_an_exception(lm):
    def boom(h):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"), hooked(lm, {("residual", 3): boom, ("v", 2): lambda h: None}):
        assert active_hook_count(lm) == 2
        lm.model(input_ids=torch.tensor([[1, 2, 3]]))
    assert active_hook_count(lm) == 0


def test_padding_never_leaks_into_averages(lm):
    texts = ["Hi.", "Explain in detail how a bicycle gear system works and why it helps.", "Why is the sky blue?"]
    examples = [Example(lm.prompt_ids(t), lm.response_ids(" Sure, here is my answer: it depends.")) for t in texts]
    sites = ["residual", "attn_out", "mlp_out", "v"]
    together = capture(lm, examples, sites, [0, 7, 29], "response[:]", batch_size=3)
    for i, ex in enumerate(examples):
        alone = capture(lm, [ex], sites, [0, 7, 29], "response[:]", batch_size=1)
        for s in sites:
            # float32 matmuls of different batch shapes round differently (~1e-6 relative);
            # leaked padding would move the mean by orders of magnitude more.
            a, b = together.acts[s][i], alone.acts[s][0]
            assert ((a - b).norm(dim=-1) / b.norm(dim=-1)).max() < 1e-5, s
            assert torch.allclose(together.norms[s][i], alone.norms[s][0], rtol=1e-5), s
    assert together.acts["residual"].shape == (3, 3, 576)
    assert together.acts["v"].shape == (3, 3, 192)


def test_capture_matches_hidden_states_reference(lm):
    """Mean over response tokens of hidden_states[i+1] computed by hand == capture()."""
    ex = Example(lm.prompt_ids("Name a colour."), lm.response_ids(" Blue is a colour."))
    got = capture(lm, [ex], ["residual"], [4, 12], "response[:]").acts["residual"][0]
    ids = torch.tensor([ex.prompt_ids + ex.response_ids])
    with torch.no_grad():
        hs = lm.model(input_ids=ids, output_hidden_states=True).hidden_states
    p = len(ex.prompt_ids)
    for j, layer in enumerate([4, 12]):
        assert torch.allclose(got[j], hs[layer + 1][0, p:].mean(0), atol=1e-4)
    last = capture(lm, [ex], ["residual"], [4], "prompt[-1]").acts["residual"][0, 0]
    assert torch.allclose(last, hs[5][0, p - 1], atol=1e-4)


def test_capture_rejects_empty_selection_and_bad_layer(lm):
    ex = Example(lm.prompt_ids("Hi"), [])
    with pytest.raises(TraitscopeError, match="selects no tokens"):
        capture(lm, [ex], ["residual"], [1], "response[:]")
    with pytest.raises(TraitscopeError, match="out of range"):
        capture(lm, [ex], ["residual"], [30], "prompt[-1]")
    with pytest.raises(TraitscopeError, match="unknown site"):
        capture(lm, [ex], ["resid"], [1], "prompt[-1]")


def test_chat_prompt_has_a_single_start_token_and_answers_sensibly(lm):
    from traitscope.generation import complete

    ids = lm.prompt_ids("What is the capital of France?")
    start = lm.tokenizer.convert_tokens_to_ids("<|im_start|>")
    assert ids[0] == start and ids[1] != start
    assert lm.eos_ids == [2] and lm.tokenizer.pad_token_id == 2
    assert "Paris" in complete(lm, "What is the capital of France?")


def test_cache_manifest_detects_corruption(lm, tmp_path):
    import shutil

    src = lm.source
    copy = tmp_path / "m"
    shutil.copytree(src, copy)
    size = json.loads((copy / MANIFEST).read_text())["source_size"]
    assert _manifest_ok(copy, size)
    st = next(copy.glob("*.safetensors"))
    data = bytearray(st.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, different bytes
    st.write_bytes(bytes(data))
    assert not _manifest_ok(copy, size)
    with st.open("r+b") as f:
        f.truncate(100)
    assert not _manifest_ok(copy, size)


def _cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "traitscope", *args], capture_output=True, text=True, env=env)


def test_cli_unknown_model_is_one_line_exit_2():
    r = _cli("info", "--model", "no-such-model")
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    assert "unknown model 'no-such-model'" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_cli_info_json(lm):
    r = _cli("info", "--json", "--max-new-tokens", "8")
    assert r.returncode == 0, r.stderr
    facts = json.loads(r.stdout)
    assert facts["layers"] == 30 and facts["hidden_size"] == 576
    assert facts["sites"]["v"] == 192
    assert facts["generated"].strip()


@pytest.mark.parametrize("model", ["lm", "base_lm"])
@pytest.mark.parametrize("position", ["all[:]", "prompt[-1]", "response[:]"])
def test_shared_prefix_pass_gives_the_plain_activations(model, position, request):
    """Rows that share a long prefix run it once and continue from its KV cache; every site, with
    weights inside and after the prefix, must equal a row captured alone (no prefix pass)."""
    from traitscope.activations.capture import MIN_SHARED_PREFIX, shared_prefix

    lm = request.getfixturevalue(model)
    intro = "You are a careful assistant. Read the question below and answer it in one short sentence."
    questions = ["Why is the sky blue?", "Name a colour.", "What do bees make from nectar, and why?"]
    examples = [Example(lm.prompt_ids(f"{intro} {q}"), lm.response_ids(" It depends on the light.")) for q in questions]
    assert shared_prefix(examples) >= MIN_SHARED_PREFIX  # the prefix pass is really taken
    sites = ["residual", "attn_out", "mlp_out", "k", "v"]
    together = capture(lm, examples, sites, [0, 5, 11], position, batch_size=3)
    for i, ex in enumerate(examples):
        alone = capture(lm, [ex], sites, [0, 5, 11], position, batch_size=1)
        for s in sites:
            a, b = together.acts[s][i], alone.acts[s][0]
            assert ((a - b).norm(dim=-1) / b.norm(dim=-1)).max() < 1e-5, (s, i)
            assert torch.allclose(together.norms[s][i], alone.norms[s][0], rtol=1e-5), (s, i)


def test_shared_prefix_reaching_into_the_responses(lm):
    """One prompt, responses that start alike: the shared prefix covers the whole prompt and the
    responses' first words, so the prefix pass also carries weight of ``response[:]``."""
    from traitscope.activations.capture import shared_prefix

    prompt = lm.prompt_ids("Describe the weather today.")
    responses = [" It is sunny and warm.", " It is sunny but windy, with clouds later.", " It is raining."]
    examples = [Example(prompt, lm.response_ids(r)) for r in responses + responses[:1]]  # a duplicate row too
    assert shared_prefix(examples) > len(prompt)
    together = capture(lm, examples, ["residual", "mlp_out"], [2, 9], "response[:]", batch_size=4)
    for i, ex in enumerate(examples):
        alone = capture(lm, [ex], ["residual", "mlp_out"], [2, 9], "response[:]", batch_size=1)
        for s in ("residual", "mlp_out"):
            a, b = together.acts[s][i], alone.acts[s][0]
            assert ((a - b).norm(dim=-1) / b.norm(dim=-1)).max() < 1e-5, (s, i)
