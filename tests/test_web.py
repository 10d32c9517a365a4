"""The dashboard over a small real run: the JSON API over real HTTP on 127.0.0.1 (path traversal,
size caps, damaged files, the live event stream) and every view in headless Chromium."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest

from traitscope.extraction import ExtractConfig, extract
from traitscope.generation import SamplingConfig
from traitscope.hooks.core import active_hook_count
from traitscope.monitor import load_bank, monitor_prompts, write_trace
from traitscope.prompts import Prompt
from traitscope.report.data import NO_STEERING
from traitscope.steering.ab import AB_JUDGE, MAX_NLL_DELTA, evaluate_ab, pick_ab
from traitscope.steering.evaluate import SteerConfig
from traitscope.store import RunDir
from traitscope.traits import load_trait
from traitscope.web.app import bind, create_app, make_server
from traitscope.web.headless import CHROMIUM, CHROMIUM_ARGS
from traitscope.web.live import steering_available

SMALL = dict(layers="4,14", sites=("residual",), max_new_tokens=6, limit=6, folds=3, batch_size=4, n_random=50)
SECRET = "TOPSECRET-do-not-serve"
AB_QUESTIONS = 4


def steering_rows() -> list[dict]:
    """Rows in the shape `traitscope steer-eval` writes (steering/results.jsonl)."""
    rows = [
        {
            "config": {
                "id": "base",
                "method": "probe",
                "site": "residual",
                "layers": [],
                "ratio": None,
                "coefs": {},
                "mode": "single",
                "baseline": True,
            },
            "judge": "lexicon",
            "trait_mean": 30.0,
            "coherence_mean": 88.0,
            "delta": 0.0,
            "n": 2,
            "answers": [{"question": "How was your day?", "answer": "It was fine.", "trait": 30.0, "coherence": 88.0}],
        }
    ]
    for layer in (4, 14):
        for ratio in (0.25, 0.5, 1.0):
            coherence = 92 - 60 * ratio * (1 if layer == 14 else 0.5)
            rows.append(
                {
                    "config": {
                        "id": f"L{layer}-r{ratio}",
                        "method": "probe",
                        "site": "residual",
                        "layers": [layer],
                        "ratio": ratio,
                        "coefs": {str(layer): ratio * 90},
                        "mode": "single",
                        "baseline": False,
                    },
                    "judge": "lexicon",
                    "trait_mean": 30 + 40 * ratio,
                    "coherence_mean": coherence,
                    "delta": 40 * ratio - (5 if layer == 4 else 0),
                    "n": 2,
                    "answers": [
                        {
                            "question": "How was your day?",
                            "answer": f"A wonderful day (ratio {ratio})!",
                            "trait": 70.0,
                            "coherence": coherence,
                        },
                        {"question": "Any plans?", "answer": "Great plans ahead.", "trait": 60.0, "coherence": 80.0},
                    ],
                }
            )
    return rows


class Server:
    """The real app on a free 127.0.0.1 port, served by uvicorn in a thread."""

    def __init__(self, app) -> None:
        self.sock = bind("127.0.0.1", 0)
        self.port = self.sock.getsockname()[1]
        self.server = make_server(app)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> Server:
        self.thread.start()
        deadline = time.time() + 20
        while not self.server.started:
            assert time.time() < deadline, "server did not start"
            time.sleep(0.02)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture(scope="module")
def site(lm, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("web")
    root = tmp / "runs"
    base = root / lm.slug
    run = base / "optimism"
    trait = load_trait("optimism")
    extract(lm, trait, run, ExtractConfig(**SMALL))
    # a run judged without a judge: real A/B rows (steer-eval --eval ab) on a copy of the run
    shutil.copytree(run, base / "optimism-ab")
    ab_configs = [SteerConfig("probe", "residual", (), baseline=True)] + [
        SteerConfig("probe", "residual", (layer,), ratio=0.3) for layer in (4, 14)
    ]
    evaluate_ab(lm, trait, base / "optimism-ab", ab_configs, trait.ab_questions[:AB_QUESTIONS], source="test")
    (run / "steering").mkdir()
    (run / "steering" / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in steering_rows()))
    bank = load_bank(lm, root, ["optimism"], layers="4,14")
    trace = monitor_prompts(lm, [Prompt("sun", "Describe a sunny morning.")], bank, SamplingConfig(8), "test")[0]
    write_trace(RunDir(run).monitor("test") / "sun.json", trace)
    (RunDir(run).monitor("test") / "broken.json").write_text(json.dumps(trace)[:500])  # a killed writer
    from traitscope.finetune.diff import diff_trace  # base vs "finetuned" (the same model here): the Diff view

    diff = diff_trace(lm, lm, bank, Prompt("sun", "Describe a sunny morning."), SamplingConfig(8), "test")
    write_trace(RunDir(run).monitor("test") / "sun.diff.json", diff)
    # a trait with vectors and evaluation but no steering results yet
    shutil.copytree(run / "vectors", base / "calm" / "vectors")
    shutil.copy(run / "evaluation.json", base / "calm" / "evaluation.json")
    # a damaged trait: truncated evaluation.json, results.jsonl with a torn last line
    (base / "damaged" / "steering").mkdir(parents=True)
    (base / "damaged" / "evaluation.json").write_text((run / "evaluation.json").read_text()[:300])
    good = "".join(json.dumps(r) + "\n" for r in steering_rows()[:3])
    (base / "damaged" / "steering" / "results.jsonl").write_text(good + '{"config": {"id": "torn"')
    # things outside the run root, reachable only through symlinks placed inside it
    outside = tmp / "outside"
    outside.mkdir()
    (outside / "secret.json").write_text(json.dumps({"secret": SECRET}))
    (outside / "evaluation.json").write_text(json.dumps({"trait": SECRET, "results": [], "best": {}}))
    (outside / "vectors").mkdir()
    (base / "evil").symlink_to(outside, target_is_directory=True)
    (root / "evilmodel").symlink_to(outside, target_is_directory=True)
    (RunDir(run).monitor("test") / "leak.json").symlink_to(outside / "secret.json")
    loads = []

    def loader(slug: str):
        loads.append(slug)
        return lm

    app = create_app(root, loader=loader)
    with Server(app) as server:
        yield SimpleNamespace(
            app=app,
            url=f"http://127.0.0.1:{server.port}",
            port=server.port,
            root=root,
            slug=lm.slug,
            loads=loads,
            evaluation=json.loads((run / "evaluation.json").read_text()),
            trace=trace,
            lm=lm,
        )


def raw_get(port: int, path: str, headers: dict | None = None) -> tuple[int, str]:
    """GET with the path sent exactly as written (httpx would normalise '..' segments)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.putrequest("GET", path, skip_host=bool(headers and "Host" in headers))
    for k, v in (headers or {}).items():
        conn.putheader(k, v)
    conn.endheaders()
    resp = conn.getresponse()
    body = resp.read().decode("utf-8", "replace")
    conn.close()
    return resp.status, body


# ---------------------------------------------------------------- JSON API over HTTP


def test_runs_lists_what_is_there_and_nothing_outside(site):
    runs = httpx.get(f"{site.url}/api/runs").json()
    assert [m["slug"] for m in runs["models"]] == [site.slug]  # evilmodel (a symlink out) is not listed
    model = runs["models"][0]
    traits = {t["name"]: t for t in model["traits"]}
    assert set(traits) == {"optimism", "optimism-ab", "calm", "damaged"}
    assert traits["optimism"]["steering"] and traits["optimism"]["evaluation"] and traits["optimism"]["vectors"] == 4
    assert traits["optimism-ab"]["steering"]
    assert not traits["calm"]["steering"]
    paths = {t["path"] for t in model["traces"]}
    assert f"{site.slug}/optimism/monitor/test/sun.json" in paths
    assert not any("leak" in p for p in paths)


def test_extraction_grids_hold_the_evaluation_values(site):
    d = httpx.get(f"{site.url}/api/extraction/{site.slug}/optimism").json()
    assert d["available"] and d["sites"] == ["residual"] and d["layers"] == [4, 14] and not d["problems"]
    for row in site.evaluation["results"]:
        i, j = d["methods"].index(row["method"]), d["layers"].index(row["layer"])
        for metric in ("auroc", "accuracy", "effect_size"):
            assert d["grids"]["residual"][metric][i][j] == pytest.approx(row[metric])
    assert {r["key"] for r in d["best"]} == set(site.evaluation["best"])


def test_steering_results_absent_present_and_torn(site):
    absent = httpx.get(f"{site.url}/api/steering/{site.slug}/calm").json()
    assert absent == {"model": site.slug, "trait": "calm", "present": False, "message": NO_STEERING, "problems": []}
    d = httpx.get(f"{site.url}/api/steering/{site.slug}/optimism").json()
    assert d["present"] and len(d["rows"]) == 7 and len(d["baselines"]) == 1
    (group,) = d["groups"]
    assert group["layers"] == ["4", "14"] and group["ratios"] == ["0.25", "0.5", "1"]
    assert group["delta"][1][2] == pytest.approx(40.0) and group["coherence"][1][2] == pytest.approx(32.0)
    torn = httpx.get(f"{site.url}/api/steering/{site.slug}/damaged").json()
    assert torn["present"] and len(torn["rows"]) == 3
    assert any("torn" in p for p in torn["problems"])


def ab_rows(site) -> list[dict]:
    lines = (site.root / site.slug / "optimism-ab" / "steering" / "results.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def test_ab_rows_become_their_own_heatmap(site):
    rows = ab_rows(site)
    base = next(r["ab_score"] for r in rows if r["config"]["baseline"])
    d = httpx.get(f"{site.url}/api/steering/{site.slug}/optimism-ab").json()
    assert d["present"] and not d["problems"] and len(d["rows"]) == 3
    assert [b["ab_score"] for b in d["baselines"]] == [pytest.approx(base)]
    (group,) = d["groups"]
    assert group["key"] == f"probe/residual/single ({AB_JUDGE})"
    assert group["layers"] == ["4", "14"] and group["ratios"] == ["0.3"]
    for i, layer in enumerate((4, 14)):
        row = next(r for r in rows if r["config"]["layers"] == [layer])
        assert group["ab_delta"][i][0] == pytest.approx(row["ab_score"] - base)
        base_nll = next(r["ab_nll"] for r in rows if r["config"]["baseline"])
        assert group["ab_nll_delta"][i][0] == pytest.approx(row["ab_nll"] - base_nll)
        assert group["delta"][i][0] is None and group["coherence"][i][0] is None  # no judge, no judged delta
    assert d["ab_fluency_limit"] == MAX_NLL_DELTA


def test_damaged_and_missing_files_are_reported_not_500(site):
    r = httpx.get(f"{site.url}/api/extraction/{site.slug}/damaged")
    assert r.status_code == 200
    d = r.json()
    assert not d["available"] and any("truncated or not valid JSON" in p for p in d["problems"])
    assert any("no vector files" in p for p in d["problems"])
    r = httpx.get(f"{site.url}/api/trace/{site.slug}/optimism/monitor/test/broken.json")
    assert r.status_code == 200 and r.json()["trace"] is None and "truncated" in r.json()["problems"][0]
    r = httpx.get(f"{site.url}/api/trace/{site.slug}/optimism/monitor/test/missing.json")
    assert r.status_code == 200 and r.json()["problems"] == [
        f"{site.slug}/optimism/monitor/test/missing.json is missing"
    ]
    assert httpx.get(f"{site.url}/api/extraction/{site.slug}/nosuch").status_code == 404
    ok = httpx.get(f"{site.url}/api/trace/{site.slug}/optimism/monitor/test/sun.json").json()
    assert ok["trace"]["projections"] == site.trace["projections"]


@pytest.mark.parametrize(
    "path",
    [
        "/api/trace/../../outside/secret.json",
        "/api/trace/%2e%2e/%2e%2e/outside/secret.json",
        "/api/trace/..%2f..%2foutside%2fsecret.json",
        "/api/trace/%2E%2E%2F%2E%2E%2Foutside%2Fsecret.json",
        "/api/trace//etc/passwd",
        "/api/trace/%2Fetc%2Fpasswd",
        "/api/trace/{slug}/optimism/monitor/test/leak.json",
        "/api/trace/{slug}/evil/monitor/x/secret.json",
        "/api/extraction/{slug}/evil",
        "/api/steering/{slug}/evil",
        "/api/extraction/evilmodel/x",
        "/api/extraction/%2e%2e/outside",
        "/api/extraction/{slug}/..%2f..%2f..%2foutside",
        "/api/live/info/..%2f..%2foutside",
        "/static/..%2f..%2fapp.py",
        "/static/%2e%2e/%2e%2e/app.py",
        "/static/../app.py",
    ],
)
def test_nothing_outside_the_run_root_is_served(site, path):
    status, body = raw_get(site.port, path.format(slug=site.slug))
    assert status in (400, 404), (status, body[:200])
    assert SECRET not in body and "def create_app" not in body and "root:" not in body


def test_request_size_caps_and_host_check(site):
    status, body = raw_get(site.port, "/api/runs?q=" + "x" * 10_000)
    assert status == 414 and "too long" in body
    r = httpx.post(f"{site.url}/api/runs", content=b"x" * 100_000)
    assert r.status_code == 413
    status, body = raw_get(site.port, "/api/runs", {"Host": "evil.example:80"})
    assert status == 421 and SECRET not in body
    r = httpx.get(f"{site.url}/")
    assert r.status_code == 200 and "default-src 'self'" in r.headers["content-security-policy"]
    assert '<script src="/static/app.js">' in r.text and "http" not in r.text.split("<body>")[1]  # no CDN


def live_chat(site, traitscope: dict, prompt: str = "Say something cheerful.", max_tokens: int = 6) -> list[dict]:
    """The Live view's request: a streamed chat completion on the dashboard's serving endpoint."""
    body = {
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": max_tokens,
        "temperature": 0,
        "stream": True,
        "traitscope": traitscope,
    }
    chunks = []
    with httpx.stream("POST", f"{site.url}/api/live/v1/{site.slug}/chat/completions", json=body, timeout=180) as r:
        assert r.status_code == 200, r.read()
        assert r.headers["content-type"].startswith("text/event-stream")
        for line in r.iter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                chunks.append(json.loads(line[len("data: ") :]))
    return chunks


def hooks_removed(lm, wait_s: float = 30.0) -> bool:
    """The batch a request ran in detaches its hooks once every row is done (a row's answer can
    arrive a moment before that)."""
    deadline = time.monotonic() + wait_s
    while active_hook_count(lm) and time.monotonic() < deadline:
        time.sleep(0.05)
    return active_hook_count(lm) == 0


def _tokens(chunks: list[dict]) -> list[dict]:
    return [c["traitscope"] for c in chunks if c.get("traitscope", {}).get("token_ids")]


def test_live_stream_loads_the_model_lazily_and_streams_tokens(site):
    info = httpx.get(f"{site.url}/api/live/info/{site.slug}").json()
    assert site.loads == [] and info["loaded"] is False  # nothing loaded before the first generation
    assert {t["name"] for t in info["traits"]} == {"optimism", "optimism-ab", "calm"}
    assert info["traits"][0]["options"]["residual/probe"] == [4, 14]
    chunks = live_chat(site, {"monitor": {"traits": ["optimism"], "layers": "14"}})
    tokens = _tokens(chunks)
    final = next(c for c in chunks if c["choices"] and c["choices"][0]["finish_reason"])
    per_token = final["traitscope"]["trait_scores"]["optimism"]["per_token"]
    assert len(tokens) == len(per_token) >= 1  # one chunk per token, as it is generated
    assert [t["trait_scores"]["optimism"]["per_token"][0] for t in tokens] == per_token
    assert all(t["trait_scores"]["optimism"]["layer"] == 14 for t in tokens)
    assert site.loads == [site.slug]
    assert httpx.get(f"{site.url}/api/live/info/{site.slug}").json()["loaded"] is True
    again = _tokens(live_chat(site, {"monitor": {"traits": ["optimism"], "layers": "14"}}))
    assert site.loads == [site.slug]  # loaded once, reused
    assert [t["token_ids"] for t in again] == [t["token_ids"] for t in tokens]  # greedy: same tokens
    assert hooks_removed(site.lm)
    url = f"{site.url}/api/live/v1/{site.slug}/chat/completions"
    bad = httpx.post(url, json={"messages": [], "stream": True}, timeout=30)
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "messages"
    for trait, param in (
        ("nosuch", "traitscope.monitor.traits[0]"),
        ("../../../outside", "traitscope.monitor.traits[0]"),
        ("evil", "traitscope.monitor.traits[0]"),
    ):
        body = {"messages": [{"role": "user", "content": "hi"}], "traitscope": {"monitor": {"traits": [trait]}}}
        bad = httpx.post(url, json=body, timeout=30)
        assert bad.status_code == 400 and bad.json()["error"]["param"] == param, bad.text
        assert SECRET not in bad.text
    body = {
        "messages": [{"role": "user", "content": "hi"}],
        "traitscope": {"monitor": {"traits": ["optimism"], "method": "../../../../outside/secret"}},
    }
    bad = httpx.post(url, json=body, timeout=30)
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "traitscope.monitor.method"


def test_live_requests_queue_in_the_batcher(site):
    """Concurrent Live requests are rows of the serving batcher, not threads waiting on a lock."""
    live_chat(site, {"monitor": {"traits": ["optimism"]}}, max_tokens=1)  # the model is loaded
    batcher = site.app.state.live.app.state.batcher
    before = len(batcher.batches)
    with ThreadPoolExecutor(4) as pool:
        results = list(
            pool.map(
                lambda p: _tokens(live_chat(site, {"monitor": {"traits": ["optimism"]}}, p, 4)),
                ["Hi.", "Tell me a joke.", "Name a colour.", "What is two plus two?"],
            )
        )
    assert all(results) and threading.active_count() < 50
    sizes = batcher.batches[before:]
    assert sum(sizes) == 4 and max(sizes) >= 2, sizes


@pytest.mark.skipif(not steering_available(), reason="traitscope.steering is not importable: steering controls hidden")
def test_live_steering_changes_what_the_monitor_reads(site):
    monitor = {"traits": ["optimism"], "layers": "14"}
    plain = live_chat(site, {"monitor": monitor}, "Describe your morning.", 4)
    steered = live_chat(
        site,
        {"monitor": monitor, "steer": [{"trait": "optimism", "layers": "4", "ratio": 1.0}]},
        "Describe your morning.",
        4,
    )
    final = [
        next(c for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]) for chunks in (plain, steered)
    ]
    assert final[0]["traitscope"]["steered"] is False and final[1]["traitscope"]["steered"] is True
    a = final[0]["traitscope"]["trait_scores"]["optimism"]["per_token"]
    b = final[1]["traitscope"]["trait_scores"]["optimism"]["per_token"]
    assert abs(a[0] - b[0]) > 1e-3  # the push at layer 4 reaches layer 14 on the first token
    assert hooks_removed(site.lm)
    body = {
        "messages": [{"role": "user", "content": "hi"}],
        "traitscope": {"steer": [{"trait": "optimism", "layers": "4", "ratio": float("inf")}]},
    }
    bad = httpx.post(f"{site.url}/api/live/v1/{site.slug}/chat/completions", content=json.dumps(body), timeout=30)
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "traitscope.steer[0].ratio"


# ---------------------------------------------------------------- the views in a real browser


@pytest.fixture(scope="module")
def page(site):
    if not CHROMIUM.exists():
        missing = f"{CHROMIUM} is missing (apt-get install -y chromium); browser tests need it"
        if os.environ.get("TRAITSCOPE_REQUIRE_BROWSER"):  # set by .ci/run: in CI a skip would hide a failure
            pytest.fail(missing)
        pytest.skip(missing)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=list(CHROMIUM_ARGS))
        pg = browser.new_page(viewport={"width": 1400, "height": 1000})
        pg.errors = []
        pg.on("pageerror", lambda e: pg.errors.append(str(e)))
        pg.on("console", lambda m: pg.errors.append(m.text) if m.type == "error" else None)
        yield pg
        browser.close()


def open_view(page, site, view: str, query: str = "") -> None:
    page.goto("about:blank")  # a fresh load: a URL differing only in its #hash would not reload
    page.goto(f"{site.url}/{query}#{view}")
    page.wait_for_selector(f"#view-{view}[data-state=ready]", timeout=30_000)


def test_extraction_view(page, site, output_dir):
    open_view(page, site, "extraction", f"?model={site.slug}&trait=optimism")
    cells = page.locator("#heat-residual-auroc rect.cell:not(.empty)")
    assert cells.count() == 4 * 2  # methods x layers
    for metric in ("accuracy", "effect_size"):
        assert page.locator(f"#heat-residual-{metric} rect.cell:not(.empty)").count() == 8
    probe4 = next(r for r in site.evaluation["results"] if r["method"] == "probe" and r["layer"] == 4)
    value = page.locator('#heat-residual-auroc rect.cell[data-row="probe"][data-col="4"]').get_attribute("data-value")
    assert float(value) == pytest.approx(probe4["auroc"])
    assert page.locator("#best-table tr").count() == 1 + len(site.evaluation["best"])
    page.screenshot(path=str(output_dir / "web-extraction.png"), full_page=True)
    # a truncated evaluation.json: the view says so instead of going blank
    page.select_option("#trait", "damaged")
    page.wait_for_selector("#view-extraction[data-state=ready] .problems")
    assert "truncated or not valid JSON" in page.locator("#view-extraction .problems").inner_text()
    page.screenshot(path=str(output_dir / "web-extraction-damaged.png"), full_page=True)
    assert page.errors == []


def test_steering_view(page, site, output_dir):
    open_view(page, site, "steering", f"?model={site.slug}&trait=optimism")
    delta = page.locator('[id^="delta-"] rect.cell:not(.empty)')
    assert delta.count() == 6
    rows = [r for r in steering_rows() if not r["config"]["baseline"]]

    def below(floor: float) -> int:
        return sum(r["coherence_mean"] < floor for r in rows)

    assert page.locator('[id^="delta-"] rect.cell.below-floor').count() == below(50)
    page.locator("#coherence-floor").fill("80")
    assert page.locator('[id^="delta-"] rect.cell.below-floor').count() == below(80)
    best = max((r for r in rows if r["coherence_mean"] >= 80), key=lambda r: r["delta"])
    cell = page.locator('[id^="delta-"] rect.cell.best')
    assert cell.count() == 1 and float(cell.get_attribute("data-value")) == pytest.approx(best["delta"])
    page.locator('[id^="delta-"] rect.cell[data-row="14"][data-col="1"]').click()
    assert page.locator("#answers table.answers tr").count() == 1 + 2  # header + answers
    assert "ratio 1.0" in page.locator("#answers").inner_text()
    page.screenshot(path=str(output_dir / "web-steering.png"), full_page=True)
    page.select_option("#trait", "calm")
    page.wait_for_selector("#steering-empty")
    assert page.locator("#steering-empty").inner_text() == NO_STEERING
    page.select_option("#trait", "damaged")
    page.wait_for_selector("#view-steering[data-state=ready] .problems")
    assert "torn" in page.locator("#view-steering .problems").inner_text()
    assert page.errors == []


def test_steering_view_of_ab_rows(page, site, output_dir):
    open_view(page, site, "steering", f"?model={site.slug}&trait=optimism-ab")
    rows = ab_rows(site)
    base = next(r["ab_score"] for r in rows if r["config"]["baseline"])
    cells = page.locator('[id^="ab-"] rect.cell:not(.empty)')
    assert cells.count() == 2 and page.locator('[id^="delta-"]').count() == 0
    for layer in (4, 14):
        row = next(r for r in rows if r["config"]["layers"] == [layer])
        cell = page.locator(f'[id^="ab-"] rect.cell[data-row="{layer}"][data-col="0.3"]')
        assert float(cell.get_attribute("data-value")) == pytest.approx(row["ab_score"] - base, abs=1e-6)
    assert f"A/B {base:.3f}" in page.locator("#baselines").inner_text()
    assert page.locator('[id^="fluency-"] rect.cell:not(.empty)').count() == 2
    # the page marks the same pick as the library's rule (pick_ab), and fades cells over the fluency limit
    base_row = next(r for r in rows if r["config"]["baseline"])
    steered = [
        {**r, "ab_delta": r["ab_score"] - base, "ab_nll_delta": r["ab_nll"] - base_row["ab_nll"]}
        for r in rows
        if not r["config"]["baseline"]
    ]
    picked = pick_ab(steered)
    best = page.locator('[id^="ab-"] rect.cell.best')
    if picked:
        assert best.count() == 1 and best.get_attribute("data-row") == str(picked[0]["config"]["layers"][0])
        assert "judge-free pick" in page.locator(".ab-note").inner_text()
    else:
        assert best.count() == 0 and "no configuration raises" in page.locator(".ab-note").inner_text()
    over = sum(r["ab_nll_delta"] > MAX_NLL_DELTA for r in steered)
    assert page.locator('[id^="ab-"] rect.cell.below-floor').count() == over
    page.locator('[id^="ab-"] rect.cell[data-row="14"][data-col="0.3"]').click()
    answers = page.locator("#answers table.answers tr")
    assert answers.count() == 1 + AB_QUESTIONS  # header + one row per question with p(trait answer)
    row14 = next(r for r in rows if r["config"]["layers"] == [14])
    assert f"{row14['items'][0]['p_trait']:.3f}" in answers.nth(1).inner_text()
    page.screenshot(path=str(output_dir / "web-steering-ab.png"), full_page=True)
    assert page.errors == []


def test_dynamics_view(page, site, output_dir):
    path = f"{site.slug}/optimism/monitor/test/sun.json"
    open_view(page, site, "dynamics", f"?model={site.slug}&trace={path}")
    page.wait_for_selector("#trace-body .tokens")
    spans = page.locator("#trace-body .tokens span.tok")
    assert spans.count() == site.trace["n_tokens"]
    assert page.locator("#trajectory polyline.series").count() == 2  # optimism L4 and L14
    n = int(page.locator("#trajectory polyline.series").first.get_attribute("data-n"))
    assert n == site.trace["n_tokens"]
    i = site.trace["boundary"] + 1
    span = page.locator(f'#trace-body span.tok[data-index="{i}"]')
    assert float(span.get_attribute("data-value")) == pytest.approx(site.trace["projections"]["optimism"]["4"][i])
    before = span.evaluate("e => e.style.background")
    span.hover()
    tip = page.locator("#tooltip")
    assert tip.is_visible() and "optimism L14: proj" in tip.inner_text()
    page.select_option("#colour-by", "optimism|14")
    span = page.locator(f'#trace-body span.tok[data-index="{i}"]')
    assert float(span.get_attribute("data-value")) == pytest.approx(site.trace["projections"]["optimism"]["14"][i])
    assert span.evaluate("e => e.style.background") != before
    page.locator("#trajectory rect.overlay").hover()
    assert "(prompt)" in tip.inner_text() or "(response)" in tip.inner_text()
    page.screenshot(path=str(output_dir / "web-dynamics.png"), full_page=True)
    page.select_option("#trace-pick", f"{site.slug}/optimism/monitor/test/broken.json")
    page.wait_for_selector("#trace-body .problems")
    assert "truncated" in page.locator("#trace-body .problems").inner_text()
    assert page.errors == []


def test_diff_view(page, site, output_dir):
    open_view(page, site, "diff", f"?model={site.slug}")
    page.wait_for_selector("#diff-body .tokens")
    assert page.locator("#diff-pick option").count() == 1  # monitor traces stay in Dynamics
    assert page.locator("#diff-both polyline.series").count() == 4  # optimism L4, L14 x finetuned, base
    assert page.locator("#diff-delta polyline.series").count() == 2
    assert "finetuned − base" in page.locator("#diff-delta").inner_text()
    page.screenshot(path=str(output_dir / "web-diff.png"), full_page=True)
    open_view(page, site, "dynamics", f"?model={site.slug}")
    options = page.locator("#trace-pick option").all_inner_texts()
    assert not any("diff" in o for o in options)
    assert page.errors == []


def test_live_view(page, site, output_dir):
    open_view(page, site, "live", f"?model={site.slug}")
    assert page.locator("#steer-controls").is_visible() == steering_available()
    page.fill("#live-prompt", "What will tomorrow bring?")
    page.fill("#live-max", "8")
    page.click("#live-go")
    page.wait_for_selector("#live-status[data-done='1']", timeout=120_000)
    status = page.locator("#live-status").inner_text()
    assert status.startswith("done:"), status
    spans = page.locator("#live-tokens span.tok")
    assert page.locator("#live-tokens span.tok.response").count() >= 1
    assert spans.count() > page.locator("#live-tokens span.tok.prompt").count()
    assert page.locator("#live-trajectory polyline.series").count() == 1
    page.screenshot(path=str(output_dir / "web-live.png"), full_page=True)
    if steering_available():
        page.select_option("#steer-trait", "optimism")
        page.select_option("#steer-layer", "4")
        page.locator("#steer-ratio").fill("1")
        page.evaluate("document.getElementById('live-status').dataset.done = ''")
        page.click("#live-go")
        page.wait_for_selector("#live-status[data-done='1']", timeout=120_000)
        assert "steered: optimism L4 ratio 1" in page.locator("#live-status").inner_text()
        page.screenshot(path=str(output_dir / "web-live-steered.png"), full_page=True)
    assert page.errors == []
    assert hooks_removed(site.lm)


# ---------------------------------------------------------------- the `view` command


def _cli(*args: str, **kw) -> subprocess.Popen:
    code = "from traitscope.cli import view_cmd; from traitscope.cli.app import main; main()"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")}
    return subprocess.Popen([sys.executable, "-c", code, "view", *args], env=env, text=True, **kw)


def test_view_command_serves_the_run_root_on_localhost(site, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = _cli(str(site.root), "--port", str(port), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 60
        while True:
            try:
                runs = httpx.get(f"http://127.0.0.1:{port}/api/runs", timeout=2).json()
                break
            except httpx.TransportError:
                assert proc.poll() is None and time.time() < deadline, proc.stderr.read() if proc.poll() else "timeout"
                time.sleep(0.2)
        assert [m["slug"] for m in runs["models"]] == [site.slug]
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=20)
    assert f"http://127.0.0.1:{port}/" in out
    # a busy port and a missing run root: one line each, exit code 2
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        for args, message in (
            ([str(site.root), "--port", str(busy.getsockname()[1])], "cannot listen on 127.0.0.1"),
            ([str(tmp_path / "nowhere")], "is not a folder"),
        ):
            proc = _cli(*args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            _, err = proc.communicate(timeout=60)
            lines = [line for line in err.splitlines() if line.strip()]
            assert proc.returncode == 2 and len(lines) == 1 and message in lines[0], err


def test_every_interface_keeps_the_host_check_and_warns(site, lm):
    """`view --host 0.0.0.0` used to accept any Host header silently; now it warns and accepts only
    this machine's names and addresses."""
    app = create_app(site.root, loader=lambda slug: lm, host="0.0.0.0")
    with Server(app) as server:
        status, _ = raw_get(server.port, "/api/runs", {"Host": "evil.example"})
        assert status == 421
        status, _ = raw_get(server.port, "/api/runs", {"Host": f"{socket.gethostname()}:{server.port}"})
        assert status == 200
    with socket.socket() as busy:  # the command stops at the busy port, after its warning
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        proc = _cli(str(site.root), "--host", "0.0.0.0", "--port", str(busy.getsockname()[1]),
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
        out, err = proc.communicate(timeout=60)
    assert "warning: --host 0.0.0.0" in out and "answers only to Host" in out, out + err
    assert proc.returncode == 2
