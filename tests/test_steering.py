"""Steering on the real bundled model, checked against hand-computed references."""

import math
import subprocess
import sys

import pytest
import torch

from traitscope.errors import TraitscopeError
from traitscope.hooks import active_hook_count
from traitscope.steering import SteeringSpec, SteerTerm, build_terms, coef_for_ratio, layer_ratios, orthogonalise, steer
from traitscope.steering.control_vector import export_control_vector, import_control_vector
from traitscope.steering.sweep import generate_rows, row_terms
from traitscope.store import Provenance, VectorSet


def _ids(lm, text="Tell me about rivers."):
    return torch.tensor([lm.prompt_ids(text)])


def _unit(d, seed=0):
    v = torch.randn(d, generator=torch.Generator().manual_seed(seed))
    return v / v.norm()


def test_add_shifts_the_residual_by_exactly_coef_times_v(lm):
    from traitscope.hooks import hooked

    v, ids = _unit(576), _ids(lm)
    seen = {}
    grab = {
        ("residual", 5): lambda h: seen.setdefault(5, h.clone()),
        ("residual", 6): lambda h: seen.setdefault(6, h.clone()),
    }
    with torch.no_grad():
        plain = lm.model(input_ids=ids, output_hidden_states=True).hidden_states
        # hooks run in registration order: the capture hooks see the steered output
        with steer(lm, SteeringSpec([SteerTerm("residual", 6, v, 5.0)])), hooked(lm, grab):
            steered_logits = lm.model(input_ids=ids).logits
    assert torch.allclose(seen[6], plain[7] + 5.0 * v, atol=1e-4)
    assert torch.allclose(seen[5], plain[6], atol=1e-5)  # earlier layers untouched
    assert not torch.allclose(steered_logits, lm.model(input_ids=ids).logits)
    assert active_hook_count(lm) == 0


def test_zero_coefficient_leaves_logits_unchanged_and_hooks_detach_on_error(lm):
    ids = _ids(lm)
    with torch.no_grad():
        plain = lm.model(input_ids=ids).logits
        with steer(lm, SteeringSpec([SteerTerm("attn_out", 3, _unit(576), 0.0)])):
            same = lm.model(input_ids=ids).logits
    assert torch.equal(plain, same)
    with pytest.raises(RuntimeError), steer(lm, SteeringSpec([SteerTerm("residual", 3, _unit(576), 1.0)])):
        raise RuntimeError("inside")
    assert active_hook_count(lm) == 0


def test_ablate_projects_the_direction_out(lm):
    v, ids = _unit(576, 1), _ids(lm)
    from traitscope.hooks import hooked

    seen = {}
    with (
        torch.no_grad(),
        steer(lm, SteeringSpec([SteerTerm("residual", 10, v)], op="ablate")),
        hooked(lm, {("residual", 10): lambda h: seen.setdefault(0, h.clone())}),
    ):
        lm.model(input_ids=ids)
    assert (seen[0][0] @ v).abs().max() < 1e-3


def test_response_scope_leaves_the_prompt_alone(lm):
    v, ids = _unit(576, 2), _ids(lm)
    with torch.no_grad():
        plain = lm.model(input_ids=ids).logits
        with steer(lm, SteeringSpec([SteerTerm("residual", 5, v, 50.0)], scope="response")):
            prompt_pass = lm.model(input_ids=ids).logits
        with steer(lm, SteeringSpec([SteerTerm("residual", 5, v, 50.0)], scope="prompt")):
            steered = lm.model(input_ids=ids).logits
    assert torch.equal(plain, prompt_pass)
    assert not torch.allclose(plain, steered)


def test_per_row_batched_terms_equal_running_rows_alone(lm):
    prompt = lm.prompt_ids("What is a good breakfast?")
    configs = [
        [],
        [SteerTerm("residual", 4, _unit(576, 3), 8.0)],
        [SteerTerm("residual", 9, _unit(576, 4), -6.0), SteerTerm("mlp_out", 2, _unit(576, 5), 3.0)],
    ]
    ids = torch.tensor([prompt] * 3)
    merged = row_terms(configs, {"residual": 576, "mlp_out": 576})
    with torch.no_grad():
        with steer(lm, SteeringSpec(merged)):
            batched = lm.model(input_ids=ids).logits
        for i, terms in enumerate(configs):
            with steer(lm, SteeringSpec(list(terms))):
                alone = lm.model(input_ids=ids[i : i + 1]).logits
            assert torch.allclose(batched[i], alone[0], atol=1e-4), i
    answers = generate_rows(lm, [(prompt, c) for c in configs], batch_size=3)
    assert len(answers) == 3 and answers[0] != answers[2]


def test_ratio_to_coefficient_gives_the_asked_perturbation(lm):
    from traitscope.steering import measure_act_norms

    norms = measure_act_norms(lm, "residual", [8])
    v = _unit(576) * 3.0  # a non-unit vector: the ratio must account for its norm
    coef = coef_for_ratio(0.5, norms[8], float(v.norm()))
    assert math.isclose(coef * float(v.norm()) / norms[8], 0.5, rel_tol=1e-9)
    assert 50 < norms[8] < 5000  # token 0 (norm ~22k) is left out of the mean


def _vset(dim=576, layers=(4, 5, 6), effects=(1.0, 3.0, -1.0)):
    prov = Provenance(
        trait="t",
        method="probe",
        site="residual",
        position="response[:]",
        model="m",
        model_type="llama",
        n_layers=30,
        hidden_size=576,
        dim=dim,
        layers=list(layers),
        act_norms={str(x): 100.0 for x in layers},
        extras={str(x): {"effect_size": e} for x, e in zip(layers, effects, strict=True)},
    )
    return VectorSet({x: _unit(dim, x) for x in layers}, prov)


def test_multi_layer_splits_and_orthogonal_mode():
    assert layer_ratios([1, 2], 0.6, "orthogonal") == [0.3, 0.3]
    w = layer_ratios([1, 2, 3], 0.8, "weighted", [1.0, 3.0, -2.0])
    assert math.isclose(sum(w), 0.8) and w[2] == 0 and math.isclose(w[1], 3 * w[0])
    vs = orthogonalise([_unit(16, 1), _unit(16, 2), _unit(16, 3)])
    for i in range(3):
        for j in range(i):
            assert abs(float(vs[i] @ vs[j])) < 1e-5
    terms = build_terms(_vset(), [4, 5, 6], ratio=0.8, mode="weighted")
    assert math.isclose(sum(t.coef for t in terms) / 100.0, 0.8, rel_tol=1e-6)
    assert terms[2].coef == 0


@pytest.mark.parametrize("bad", [-0.1, float("nan"), float("inf")])
def test_bad_ratios_are_rejected(bad):
    with pytest.raises(TraitscopeError, match="perturbation ratio"):
        coef_for_ratio(bad, 100.0)


def test_vectors_from_another_model_are_a_clear_error(lm):
    vs = _vset()
    vs.provenance.hidden_size = 640
    with pytest.raises(TraitscopeError, match="hidden size 640"):
        vs.check_model(lm.n_layers, lm.hidden_size, 576, lm.name)
    vs = _vset()
    vs.provenance.n_layers = 18
    with pytest.raises(TraitscopeError, match="18 layers"):
        vs.check_model(lm.n_layers, lm.hidden_size, 576, lm.name)


def test_gguf_control_vector_roundtrip(tmp_path):
    import gguf

    dirs = {0: _unit(32, 0), 3: _unit(32, 3) * 2.5, 7: _unit(32, 7)}
    written = export_control_vector(tmp_path / "cv.gguf", dirs, "llama")
    assert written == [3, 7]  # llama.cpp cannot steer block 0
    back, hint = import_control_vector(tmp_path / "cv.gguf")
    assert hint == "llama" and sorted(back) == [3, 7]
    assert torch.allclose(back[3], dirs[3])
    reader = gguf.GGUFReader(str(tmp_path / "cv.gguf"))
    assert int(reader.fields["controlvector.layer_count"].parts[-1][0]) == 2


def test_cli_bad_ratio_and_missing_run_exit_2(tmp_path):
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "traitscope",
            "steer-eval",
            "optimism",
            "--run",
            str(tmp_path / "none"),
            "--ratios",
            "0.2,-1",
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2 and "perturbation ratio -1.0" in r.stderr and "Traceback" not in r.stderr
    r = subprocess.run(
        [sys.executable, "-m", "traitscope", "steer", "optimism", "--run", str(tmp_path / "none"), "--prompt", "hi"],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2 and "does not exist" in r.stderr
