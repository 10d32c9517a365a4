// traitscope dashboard: plain JS, hand-drawn SVG charts, data from the local JSON API only.
"use strict";

const SVG_NS = "http://www.w3.org/2000/svg";
const state = { runs: null, model: null, trait: null, view: "extraction", live: null };

// ---------- small DOM helpers ----------
function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) if (c !== null && c !== undefined) node.append(c);
  return node;
}
function s(tag, attrs = {}) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== null && v !== undefined) node.setAttribute(k, v);
  return node;
}
const enc = encodeURIComponent;
const safeId = (text) => String(text).replace(/[^A-Za-z0-9_-]+/g, "_");
const fmt = (v, d = 3) => (v === null || v === undefined || Number.isNaN(v) ? "–" : Number(v).toFixed(d));

async function getJSON(url) {
  try {
    const r = await fetch(url);
    const body = await r.json().catch(() => null);
    if (!r.ok) return { error: (body && body.error) || `HTTP ${r.status} for ${url}` };
    return body || { error: `empty response from ${url}` };
  } catch (e) {
    return { error: `cannot reach the server: ${e}` };
  }
}

function problemBox(problems) {
  if (!problems || !problems.length) return null;
  return h("div", { class: "problems" }, h("ul", {}, problems.map((p) => h("li", { text: p }))));
}

// ---------- colour scales ----------
const VIRIDIS = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];
function sequential(t) {
  t = Math.max(0, Math.min(1, t));
  const x = t * (VIRIDIS.length - 1), i = Math.min(VIRIDIS.length - 2, Math.floor(x)), f = x - i;
  const c = VIRIDIS[i].map((a, k) => Math.round(a + (VIRIDIS[i + 1][k] - a) * f));
  return `rgb(${c[0]},${c[1]},${c[2]})`;
}
function diverging(t, neg = [214, 64, 69], pos = [49, 130, 189]) {
  // t in [-1, 1]: white at 0.
  t = Math.max(-1, Math.min(1, t));
  const c = t < 0 ? neg : pos, a = Math.abs(t);
  const mix = c.map((x) => Math.round(255 + (x - 255) * a));
  return `rgb(${mix[0]},${mix[1]},${mix[2]})`;
}
const tokenColour = (t) => diverging(t, [235, 87, 87], [46, 170, 90]);
function inkOn(rgb) {
  // Dark text on light cells, white on dark ones (relative luminance of the fill).
  const m = /rgb\((\d+),(\d+),(\d+)\)/.exec(rgb);
  if (!m) return "#000";
  const [r, g, b] = m.slice(1).map(Number);
  return 0.2126 * r + 0.7152 * g + 0.0722 * b < 120 ? "#fff" : "#1d2330";
}

// ---------- tooltip ----------
const tooltip = () => document.getElementById("tooltip");
function showTip(ev, text) {
  const tip = tooltip();
  tip.textContent = text;
  tip.hidden = false;
  tip.style.left = `${Math.min(ev.clientX + 14, window.innerWidth - 300)}px`;
  tip.style.top = `${ev.clientY + 14}px`;
}
function hideTip() { tooltip().hidden = true; }

// ---------- charts ----------
function heatmap({ title, rows, cols, values, colour, digits = 2, cellClass, onClick, xLabel, yLabel, id }) {
  const cw = Math.max(20, Math.min(46, 640 / Math.max(1, cols.length))), ch = 24;
  const left = 92, top = 8, bottom = 40;
  const width = left + cw * cols.length + 10, height = top + ch * rows.length + bottom;
  const svg = s("svg", { width, height, viewBox: `0 0 ${width} ${height}`, class: "heatmap", "data-title": title });
  rows.forEach((r, i) => {
    const label = s("text", { x: left - 6, y: top + ch * i + ch / 2 + 3, "text-anchor": "end" });
    label.textContent = r;
    svg.append(label);
    cols.forEach((c, j) => {
      const v = values[i] ? values[i][j] : null;
      const empty = v === null || v === undefined;
      const cls = ["cell", empty ? "empty" : "", onClick && !empty ? "clickable" : "", cellClass ? cellClass(i, j, v) : ""];
      const rect = s("rect", {
        x: left + cw * j, y: top + ch * i, width: cw, height: ch, class: cls.filter(Boolean).join(" "),
        fill: empty ? null : colour(v), "data-row": r, "data-col": c, "data-value": empty ? "" : v,
      });
      const t = s("title");
      t.textContent = `${yLabel || "row"} ${r}, ${xLabel || "col"} ${c}: ${empty ? "not evaluated" : fmt(v, 3)}`;
      rect.append(t);
      if (onClick && !empty) rect.addEventListener("click", () => onClick(i, j, rect));
      svg.append(rect);
      if (!empty && cols.length <= 16 && rows.length <= 16) {
        const txt = s("text", { x: left + cw * j + cw / 2, y: top + ch * i + ch / 2 + 3, "text-anchor": "middle", "pointer-events": "none", fill: inkOn(colour(v)) });
        txt.textContent = Number(v).toFixed(digits);
        svg.append(txt);
      }
    });
  });
  const every = Math.ceil(cols.length / 30);
  cols.forEach((c, j) => {
    if (j % every) return;
    const t = s("text", { x: left + cw * j + cw / 2, y: top + ch * rows.length + 13, "text-anchor": "middle" });
    t.textContent = c;
    svg.append(t);
  });
  const xl = s("text", { x: left + (cw * cols.length) / 2, y: height - 6, "text-anchor": "middle", class: "axis-label" });
  xl.textContent = xLabel || "";
  svg.append(xl);
  return h("figure", { class: "chart", id }, h("figcaption", { text: title }), svg);
}

function range(values) {
  let lo = Infinity, hi = -Infinity;
  for (const v of values) if (Number.isFinite(v)) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
  if (lo === Infinity) return [0, 1];
  if (lo === hi) return [lo - 1, hi + 1];
  const pad = (hi - lo) * 0.06;
  return [lo - pad, hi + pad];
}

const PALETTE = ["#2f5fd0", "#d9480f", "#2b8a3e", "#ae3ec9", "#e67700", "#0b7285", "#c2255c", "#5c940d"];

// Trajectories: one polyline per series, the prompt/response boundary dashed, hover for values.
function lineChart({ series, tokens, boundary, skip = new Set(), yLabel = "projection", id }) {
  const n = tokens.length;
  const width = Math.max(640, Math.min(1400, 70 + n * 9)), height = 270;
  const left = 56, right = 12, top = 12, bottom = 30;
  const visible = series.flatMap((sr) => sr.values.filter((_, i) => !skip.has(i)));
  const [lo, hi] = range(visible);
  const x = (i) => left + (n <= 1 ? 0 : (i * (width - left - right)) / (n - 1));
  const y = (v) => top + (1 - (Math.max(lo, Math.min(hi, v)) - lo) / (hi - lo)) * (height - top - bottom);
  const svg = s("svg", { width, height, viewBox: `0 0 ${width} ${height}`, class: "trajectory" });
  for (let k = 0; k <= 4; k++) {
    const v = lo + ((hi - lo) * k) / 4;
    svg.append(s("line", { x1: left, x2: width - right, y1: y(v), y2: y(v), stroke: "#eee" }));
    const t = s("text", { x: left - 4, y: y(v) + 3, "text-anchor": "end" });
    t.textContent = Math.abs(v) >= 100 ? v.toFixed(0) : v.toFixed(2);
    svg.append(t);
  }
  if (lo < 0 && hi > 0) svg.append(s("line", { x1: left, x2: width - right, y1: y(0), y2: y(0), stroke: "#bbb" }));
  if (boundary > 0 && boundary < n) {
    const bx = (x(boundary - 1) + x(boundary)) / 2;
    svg.append(s("line", { x1: bx, x2: bx, y1: top, y2: height - bottom, class: "boundary" }));
    const t = s("text", { x: bx + 4, y: top + 10 });
    t.textContent = "response →";
    svg.append(t);
  }
  series.forEach((sr, k) => {
    const pts = sr.values.map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(" ");
    svg.append(s("polyline", { points: pts, class: "series", stroke: sr.colour || PALETTE[k % PALETTE.length], "data-label": sr.label, "data-n": sr.values.length }));
  });
  const yl = s("text", { x: 4, y: top + 8, class: "axis-label" });
  yl.textContent = yLabel;
  svg.append(yl);
  const xl = s("text", { x: width / 2, y: height - 6, "text-anchor": "middle", class: "axis-label" });
  xl.textContent = "token";
  svg.append(xl);
  const hover = s("line", { y1: top, y2: height - bottom, class: "hover-line", visibility: "hidden" });
  svg.append(hover);
  const overlay = s("rect", { x: left, y: top, width: width - left - right, height: height - top - bottom, fill: "transparent", class: "overlay" });
  overlay.addEventListener("mousemove", (ev) => {
    const box = svg.getBoundingClientRect();
    const px = ((ev.clientX - box.left) * width) / box.width;
    const i = Math.max(0, Math.min(n - 1, Math.round(((px - left) * (n - 1)) / (width - left - right))));
    hover.setAttribute("x1", x(i));
    hover.setAttribute("x2", x(i));
    hover.setAttribute("visibility", "visible");
    const lines = series.map((sr) => `${sr.label}: ${fmt(sr.values[i])}`);
    showTip(ev, `#${i} ${JSON.stringify(tokens[i])}${i >= boundary ? " (response)" : " (prompt)"}\n${lines.join("\n")}`);
  });
  overlay.addEventListener("mouseleave", () => { hover.setAttribute("visibility", "hidden"); hideTip(); });
  svg.append(overlay);
  const legend = h("div", { class: "legend" }, series.map((sr, k) => h("span", {}, h("b", { text: "■ ", class: `sw${k}` }), `${sr.label}   `)));
  legend.querySelectorAll("b").forEach((b, k) => { b.style.color = series[k].colour || PALETTE[k % PALETTE.length]; });
  return h("figure", { class: "chart", id }, h("figcaption", { text: "trajectory" }), svg, legend);
}

// Newlines would be invisible as coloured spans: mark them (the text itself is unchanged in the data).
const showable = (tok) => (tok.includes("\n") ? tok.replace(/\n/g, "↵\n") : tok);

// Tokens with their background coloured by distance from the threshold.
function tokenView(tokens, values, threshold, boundary, skip, describe) {
  const scale = Math.max(1e-9, ...values.map((v, i) => (skip.has(i) || !Number.isFinite(v) ? 0 : Math.abs(v - threshold))));
  const box = h("div", { class: "tokens" });
  tokens.forEach((tok, i) => {
    const v = values[i];
    const span = h("span", {
      class: `tok ${i < boundary ? "prompt" : "response"}${i === boundary ? " boundary-start" : ""}`,
      "data-index": i, "data-value": v, text: showable(tok),
    });
    span.style.background = skip.has(i) ? "#ddd" : tokenColour((v - threshold) / scale);
    span.addEventListener("mousemove", (ev) => showTip(ev, describe(i)));
    span.addEventListener("mouseleave", hideTip);
    box.append(span);
  });
  return box;
}

function outliers(norms, factor = 5) {
  // Tokens with a massive activation norm (SmolLM2's token 0) stay in the data but not the colour/axis ranges.
  const vals = norms.filter(Number.isFinite).slice().sort((a, b) => a - b);
  const out = new Set();
  if (vals.length < 3) return out;
  const med = vals[Math.floor(vals.length / 2)];
  norms.forEach((v, i) => { if (med > 0 && v > factor * med) out.add(i); });
  return out;
}

// ---------- navigation ----------
function currentModel() {
  return state.runs && state.runs.models.find((m) => m.slug === state.model);
}

function fillSelect(select, options, value) {
  select.replaceChildren(...options.map((o) => h("option", { value: o, text: o })));
  if (options.includes(value)) select.value = value;
  return select.value || null;
}

async function loadRuns() {
  const runs = await getJSON("/api/runs");
  const box = document.getElementById("global-problems");
  if (runs.error) {
    box.replaceChildren(h("ul", {}, h("li", { text: runs.error })));
    box.hidden = false;
    state.runs = { models: [] };
    return;
  }
  state.runs = runs;
  box.replaceChildren(...(runs.problems.length ? [h("ul", {}, runs.problems.map((p) => h("li", { text: p })))] : []));
  box.hidden = !runs.problems.length;
  const params = new URLSearchParams(location.search);
  const withTraits = runs.models.find((m) => m.traits.length);
  const preferred = params.get("model") || state.model || (withTraits && withTraits.slug);
  state.model = fillSelect(document.getElementById("model"), runs.models.map((m) => m.slug), preferred);
  syncTraits(params.get("trait"));
}

function syncTraits(wanted) {
  const m = currentModel();
  state.trait = fillSelect(document.getElementById("trait"), m ? m.traits.map((t) => t.name) : [], wanted || state.trait);
}

function route() {
  const view = (location.hash || "#extraction").slice(1);
  state.view = ["extraction", "steering", "dynamics", "diff", "live"].includes(view) ? view : "extraction";
  document.querySelectorAll("nav a.tab").forEach((a) => a.classList.toggle("active", a.dataset.view === state.view));
  document.querySelectorAll("section.view").forEach((sec) => { sec.hidden = sec.id !== `view-${state.view}`; });
  document.getElementById("trait-pick").hidden = !["extraction", "steering"].includes(state.view);
  render();
}

async function render() {
  const sec = document.getElementById(`view-${state.view}`);
  sec.dataset.state = "loading";
  sec.replaceChildren(h("p", { class: "status", text: "loading…" }));
  try {
    if (!state.model) sec.replaceChildren(h("div", { class: "message", text: "No runs in this run root yet: run `traitscope extract TRAIT` first." }));
    else if (state.view === "extraction") await renderExtraction(sec);
    else if (state.view === "steering") await renderSteering(sec);
    else if (state.view === "dynamics") await renderDynamics(sec);
    else if (state.view === "diff") await renderDiff(sec);
    else await renderLive(sec);
  } catch (e) {
    sec.replaceChildren(h("div", { class: "problems" }, `This view failed to draw: ${e}`));
  }
  sec.dataset.state = "ready";
}

// ---------- Extraction ----------
const METRIC_VIEW = {
  auroc: { label: "AUROC", colour: (v) => sequential((v - 0.5) / 0.5) },
  accuracy: { label: "accuracy", colour: (v) => sequential((v - 0.5) / 0.5) },
  effect_size: { label: "effect size d", colour: null },
};

async function renderExtraction(sec) {
  if (!state.trait) {
    sec.replaceChildren(h("div", { class: "message", text: `No traits for ${state.model}.` }));
    return;
  }
  const d = await getJSON(`/api/extraction/${enc(state.model)}/${enc(state.trait)}`);
  if (d.error) { sec.replaceChildren(problemBox([d.error])); return; }
  const parts = [h("h2", { text: `${d.trait} on ${d.model}` + (d.position ? ` — position ${d.position}` : "") }), problemBox(d.problems)];
  if (d.available) {
    for (const site of d.sites) {
      const charts = Object.entries(METRIC_VIEW).map(([metric, mv]) => {
        const vals = d.grids[site][metric];
        let colour = mv.colour;
        if (!colour) {
          const flat = vals.flat().filter(Number.isFinite);
          const hi = Math.max(1e-9, ...flat.map(Math.abs));
          colour = (v) => sequential(Math.abs(v) / hi);
        }
        return heatmap({
          title: `${site}: ${mv.label}`, rows: d.methods, cols: d.layers.map(String), values: vals, colour,
          xLabel: "layer", yLabel: "method", id: `heat-${site}-${metric}`,
        });
      });
      parts.push(h("h3", { text: `site ${site}` }), h("div", { class: "row" }, charts));
    }
    parts.push(h("h3", { text: "best vectors (by cross-validated AUROC)" }), bestTable(d.best));
  }
  sec.replaceChildren(...parts.filter(Boolean));
}

function bestTable(rows) {
  const head = ["site/method", "layer", "AUROC", "accuracy", "effect size d", "polarity", "random p95 AUROC"];
  return h("table", { id: "best-table" },
    h("tr", {}, head.map((c) => h("th", { text: c }))),
    rows.map((r) => h("tr", {},
      h("td", { text: r.key }), h("td", { text: r.layer }),
      h("td", { text: `${fmt(r.auroc)} ± ${fmt(r.auroc_sd)}` }), h("td", { text: `${fmt(r.accuracy)} ± ${fmt(r.accuracy_sd)}` }),
      h("td", { text: fmt(r.effect_size, 2) }), h("td", { text: r.polarity_correct ? "ok" : "flipped" }),
      h("td", { text: fmt(r.random_auroc_p95) }))));
}

// ---------- Steering ----------
async function renderSteering(sec) {
  if (!state.trait) {
    sec.replaceChildren(h("div", { class: "message", text: `No traits for ${state.model}.` }));
    return;
  }
  const d = await getJSON(`/api/steering/${enc(state.model)}/${enc(state.trait)}`);
  if (d.error) { sec.replaceChildren(problemBox([d.error])); return; }
  if (!d.present) {
    sec.replaceChildren(h("h2", { text: `steering ${d.trait}` }), h("div", { class: "message", id: "steering-empty", text: d.message }));
    return;
  }
  const floorInput = h("input", { type: "range", id: "coherence-floor", min: 0, max: 100, step: 1, value: 50 });
  const floorLabel = h("span", { id: "coherence-floor-value", text: "50" });
  const grids = h("div", { id: "steering-grids" });
  const answers = h("div", { id: "answers" }, h("p", { class: "status", text: "Click a cell to browse its answers." }));
  const picker = h("select", { id: "config-pick" },
    h("option", { value: "", text: "choose a configuration…" }),
    d.rows.map((r, i) => h("option", { value: i, text: configLabel(r) })));
  picker.addEventListener("change", () => picker.value !== "" && showAnswers(answers, d.rows[Number(picker.value)]));
  const draw = () => {
    const floor = Number(floorInput.value);
    floorLabel.textContent = String(floor);
    grids.replaceChildren(...d.groups.map((g) => steeringGroup(g, d.rows, floor, answers, d.ab_fluency_limit)));
  };
  floorInput.addEventListener("input", draw);
  draw();
  sec.replaceChildren(
    h("h2", { text: `steering ${d.trait} on ${d.model}` }), problemBox(d.problems) || "",
    baselineTable(d.baselines),
    h("div", { class: "controls" }, h("label", {}, "coherence floor ", floorInput, " ", floorLabel),
      h("span", { class: "legend", text: "delta cells below the floor are faded; the outlined cell is the best delta above it" })),
    grids, h("h3", { text: "answers" }), picker, answers);
}

function configLabel(r) {
  const c = r.config || {};
  const strength = c.ratio !== null && c.ratio !== undefined ? `ratio ${c.ratio}` : `coefs ${JSON.stringify(c.coefs || {})}`;
  return `${c.baseline ? "baseline" : `${c.method}/${c.site} L${(c.layers || []).join("+")} ${c.mode} ${strength}`} — ${r.judge || "?"}`;
}

function baselineTable(baselines) {
  if (!baselines || !baselines.length) return h("p", { class: "status", text: "no baseline row in the results" });
  return h("table", { id: "baselines" }, h("tr", {}, ["baseline (judge)", "trait mean", "coherence mean", "n"].map((c) => h("th", { text: c }))),
    baselines.map((b) => h("tr", {}, h("td", { text: b.judge || "?" }), h("td", { text: b.ab_score !== null && b.ab_score !== undefined ? `A/B ${fmt(b.ab_score, 3)}` : fmt(b.trait_mean, 1) }), h("td", { text: fmt(b.coherence_mean, 1) }), h("td", { text: b.n }))));
}

function abGroup(g, rows, answers, limit) {
  const span = Math.max(1e-9, ...g.ab_delta.flat().filter(Number.isFinite).map(Math.abs));
  const cost = g.ab_nll_delta || [];
  const hasCost = cost.flat().some(Number.isFinite);
  const over = (i, j) => hasCost && limit !== null && limit !== undefined && !(cost[i][j] <= limit);
  let pick = null; // the pick_ab rule: the highest positive A/B delta whose fluency cost is within the limit
  g.ab_delta.forEach((row, i) => row.forEach((v, j) => {
    if (!Number.isFinite(v) || v <= 0 || over(i, j)) return;
    if (!pick || v > g.ab_delta[pick[0]][pick[1]]) pick = [i, j];
  }));
  const click = (i, j) => showAnswers(answers, rows[g.cells[i][j]]);
  const abMap = heatmap({
    title: `${g.key}: A/B delta`, rows: g.layers, cols: g.ratios, values: g.ab_delta, digits: 3,
    colour: (v) => diverging(v / span), xLabel: "ratio", yLabel: "layer", id: `ab-${safeId(g.key)}`, onClick: click,
    cellClass: (i, j) => [over(i, j) ? "below-floor" : "", pick && pick[0] === i && pick[1] === j ? "best" : ""].join(" "),
  });
  const maps = [abMap];
  if (hasCost) {
    const top = Math.max(1e-9, limit || 0, ...cost.flat().filter(Number.isFinite));
    maps.push(heatmap({
      title: `${g.key}: fluency cost (NLL delta)`, rows: g.layers, cols: g.ratios, values: cost, digits: 2,
      colour: (v) => sequential(1 - Math.min(1, Math.max(0, v) / top)), xLabel: "ratio", yLabel: "layer",
      id: `fluency-${safeId(g.key)}`, onClick: click,
    }));
  }
  const note = !hasCost
    ? "judge-free: change in the probability of the trait answer against the unsteered model (these rows carry no fluency cost)"
    : pick
      ? `judge-free pick (largest A/B delta with fluency cost ≤ ${limit}): layer ${g.layers[pick[0]]}, ratio ${g.ratios[pick[1]]}, A/B delta ${fmt(g.ab_delta[pick[0]][pick[1]], 3)}; confirm it by generation`
      : `no configuration raises the A/B score with a fluency cost within ${limit}`;
  return h("div", { class: "group" }, h("h3", { text: g.key }), h("div", { class: "row" }, ...maps),
    h("p", { class: "status ab-note", text: note }));
}

function steeringGroup(g, rows, floor, answers, limit) {
  if ((g.ab_delta || []).flat().some(Number.isFinite)) return abGroup(g, rows, answers, limit);
  let best = null;
  g.delta.forEach((row, i) => row.forEach((v, j) => {
    const c = g.coherence[i][j];
    if (v === null || c === null || c < floor) return;
    if (!best || v > g.delta[best[0]][best[1]]) best = [i, j];
  }));
  const span = Math.max(1e-9, ...g.delta.flat().filter(Number.isFinite).map(Math.abs));
  const click = (i, j, rect) => {
    document.querySelectorAll("rect.cell.selected").forEach((r) => r.classList.remove("selected"));
    rect.classList.add("selected");
    showAnswers(answers, rows[g.cells[i][j]]);
  };
  const deltaMap = heatmap({
    title: `${g.key}: trait delta`, rows: g.layers, cols: g.ratios, values: g.delta, digits: 1,
    colour: (v) => diverging(v / span), xLabel: "ratio", yLabel: "layer", onClick: click, id: `delta-${safeId(g.key)}`,
    cellClass: (i, j, v) => [g.coherence[i][j] !== null && g.coherence[i][j] < floor ? "below-floor" : "",
      best && best[0] === i && best[1] === j ? "best" : ""].join(" "),
  });
  const cohMap = heatmap({
    title: `${g.key}: coherence`, rows: g.layers, cols: g.ratios, values: g.coherence, digits: 0,
    colour: (v) => sequential(v / 100), xLabel: "ratio", yLabel: "layer", onClick: click, id: `coherence-${safeId(g.key)}`,
  });
  const note = best
    ? `best above floor ${floor}: layer ${g.layers[best[0]]}, ratio ${g.ratios[best[1]]}, delta ${fmt(g.delta[best[0]][best[1]], 1)}`
    : `no configuration reaches coherence ${floor}`;
  return h("div", { class: "group" }, h("h3", { text: g.key }), h("div", { class: "row" }, deltaMap, cohMap), h("p", { class: "status best-note", text: note }));
}

function showAnswers(box, row) {
  if (!row) return;
  if (row.eval === "ab") {
    const items = Array.isArray(row.items) ? row.items : [];
    box.replaceChildren(h("p", {}, h("b", { text: configLabel(row) }), ` — A/B score ${fmt(row.ab_score, 3)} (${row.ab_format || "?"}), fluency NLL ${fmt(row.ab_nll, 2)}, n ${row.n}`),
      h("table", { class: "answers" }, h("tr", {}, ["question", "p(trait answer)"].map((c) => h("th", { text: c }))),
        items.map((it) => h("tr", {}, h("td", { class: "text", text: it.question }), h("td", { text: fmt(it.p_trait, 3) })))));
    return;
  }
  const list = Array.isArray(row.answers) ? row.answers : [];
  box.replaceChildren(
    h("p", {}, h("b", { text: configLabel(row) }), ` — trait ${fmt(row.trait_mean, 1)}, coherence ${fmt(row.coherence_mean, 1)}, delta ${fmt(row.delta, 1)}, n ${row.n}`),
    list.length ? h("table", { class: "answers" }, h("tr", {}, ["question", "answer", "trait", "coherence"].map((c) => h("th", { text: c }))),
      list.map((a) => h("tr", {}, h("td", { class: "text", text: a.question }), h("td", { class: "text", text: a.answer }), h("td", { text: fmt(a.trait, 1) }), h("td", { text: fmt(a.coherence, 1) }))))
      : h("p", { class: "status", text: "this configuration has no stored answers" }));
}

// ---------- Dynamics ----------
async function renderDynamics(sec) {
  const traces = (currentModel() || { traces: [] }).traces.filter((t) => t.kind !== "diff");
  if (!traces.length) {
    sec.replaceChildren(h("div", { class: "message", text: `No monitor traces for ${state.model} yet: run \`traitscope monitor\`.` }));
    return;
  }
  const params = new URLSearchParams(location.search);
  const paths = traces.map((t) => t.path);
  const pick = h("select", { id: "trace-pick" }, traces.map((t) => h("option", { value: t.path, text: `${t.set}/${t.id}${t.trait ? ` (${t.trait})` : ""}` })));
  if (paths.includes(params.get("trace"))) pick.value = params.get("trace");
  const body = h("div", { id: "trace-body" });
  pick.addEventListener("change", () => showTrace(body, pick.value));
  sec.replaceChildren(h("div", { class: "controls" }, h("label", {}, "trace ", pick)), body);
  await showTrace(body, pick.value);
}

async function showTrace(body, path) {
  body.replaceChildren(h("p", { class: "status", text: "loading…" }));
  const d = await getJSON(`/api/trace/${path.split("/").map(enc).join("/")}`);
  if (d.error || !d.trace) { body.replaceChildren(problemBox(d.error ? [d.error] : d.problems)); return; }
  const t = d.trace;
  const combos = [];
  for (const [trait, byLayer] of Object.entries(t.projections)) for (const layer of Object.keys(byLayer)) combos.push([trait, layer]);
  const skip = new Set();
  Object.values(t.norms).forEach((n) => outliers(n).forEach((i) => skip.add(i)));
  const colourBy = h("select", { id: "colour-by" }, combos.map(([tr, l]) => h("option", { value: `${tr}|${l}`, text: `${tr} L${l}` })));
  const metric = h("select", { id: "metric" }, h("option", { value: "projections", text: "projection" }), h("option", { value: "cosines", text: "cosine" }));
  const checks = combos.map(([tr, l], k) => h("label", {}, h("input", { type: "checkbox", class: "series-toggle", value: `${tr}|${l}`, checked: k < 4 }), ` ${tr} L${l}`));
  const tokensBox = h("div", {}), chartBox = h("div", {});
  const describe = (i) => {
    const lines = combos.map(([tr, l]) => `${tr} L${l}: proj ${fmt(t.projections[tr][l][i])}  cos ${fmt(t.cosines[tr][l][i], 4)}`);
    const norms = Object.entries(t.norms).map(([l, n]) => `norm L${l}: ${fmt(n[i], 1)}`);
    return `#${i} ${JSON.stringify(t.tokens[i])} (${i < t.boundary ? "prompt" : "response"})\n${lines.join("\n")}\n${norms.join("\n")}`;
  };
  const draw = () => {
    const [tr, l] = colourBy.value.split("|");
    const key = metric.value;
    const threshold = key === "projections" ? Number(t.summaries[tr][l].threshold) : 0;
    tokensBox.replaceChildren(h("p", { class: "legend", text: `colour: ${tr} L${l} ${key === "projections" ? "projection" : "cosine"} — green above threshold ${fmt(threshold)}, red below; grey: massive-norm token (left out of the scale)` }),
      tokenView(t.tokens, t[key][tr][l], threshold, t.boundary, skip, describe));
    const chosen = [...body.querySelectorAll("input.series-toggle:checked")].map((c) => c.value.split("|"));
    const series = chosen.map(([a, b]) => ({ label: `${a} L${b}`, values: t[key][a][b] }));
    chartBox.replaceChildren(series.length ? lineChart({ series, tokens: t.tokens, boundary: t.boundary, skip, yLabel: key === "projections" ? "projection" : "cosine", id: "trajectory" })
      : h("p", { class: "status", text: "tick a series to plot it" }));
  };
  [colourBy, metric].forEach((c) => c.addEventListener("change", draw));
  body.replaceChildren(
    h("p", {}, h("b", { text: t.prompt }), h("span", { class: "legend", text: `  ${t.model} · ${t.site} · ${t.mode} · ${t.n_tokens} tokens, response from #${t.boundary}` })),
    h("div", { class: "controls" }, h("label", {}, "colour by ", colourBy), h("label", {}, "value ", metric), h("span", {}, "plot: ", ...checks)),
    tokensBox, chartBox, summaryTable(t));
  body.querySelectorAll("input.series-toggle").forEach((c) => c.addEventListener("change", draw));
  draw();
}

// ---------- Diff (base vs finetuned on the same tokens: `traitscope diff`) ----------
async function renderDiff(sec) {
  const diffs = (currentModel() || { traces: [] }).traces.filter((t) => t.kind === "diff");
  if (!diffs.length) {
    sec.replaceChildren(h("div", { class: "message", text: `No base-vs-finetuned traces for ${state.model} yet: run \`traitscope diff --adapter DIR ...\`.` }));
    return;
  }
  const pick = h("select", { id: "diff-pick" }, diffs.map((t) => h("option", { value: t.path, text: `${t.set}/${t.id}${t.trait ? ` (${t.trait})` : ""}` })));
  const body = h("div", { id: "diff-body" });
  pick.addEventListener("change", () => showDiff(body, pick.value));
  sec.replaceChildren(h("div", { class: "controls" }, h("label", {}, "diff ", pick)), body);
  await showDiff(body, pick.value);
}

async function showDiff(body, path) {
  body.replaceChildren(h("p", { class: "status", text: "loading…" }));
  const d = await getJSON(`/api/trace/${path.split("/").map(enc).join("/")}`);
  if (d.error || !d.diff) { body.replaceChildren(problemBox(d.error ? [d.error] : d.problems)); return; }
  const g = d.diff, skip = new Set();
  Object.values(g.base.norms).forEach((n) => outliers(n).forEach((i) => skip.add(i)));
  const both = [], delta = [];
  Object.entries(g.delta).forEach(([tr, byLayer]) => Object.keys(byLayer).forEach((l) => {
    const k = delta.length;
    both.push({ label: `${tr} L${l} finetuned`, values: g.finetuned.projections[tr][l], colour: PALETTE[(2 * k) % PALETTE.length] },
      { label: `${tr} L${l} base`, values: g.base.projections[tr][l], colour: PALETTE[(2 * k + 1) % PALETTE.length] });
    delta.push({ label: `${tr} L${l} finetuned − base (mean over response ${fmt(g.mean_delta_response[tr][l])})`, values: byLayer[l] });
  }));
  const first = delta.length ? Object.entries(g.delta)[0] : null;
  const describe = (i) => `#${i} ${JSON.stringify(g.tokens[i])}\n${delta.map((x) => `${x.label.split(" (")[0]}: ${fmt(x.values[i])}`).join("\n")}`;
  body.replaceChildren(
    h("p", {}, h("b", { text: g.prompt }), h("span", { class: "legend", text: `  ${g.model} vs + ${g.adapter || "(no adapter)"} · ${g.site} · the finetuned answer read by both models` })),
    first ? tokenView(g.tokens, first[1][Object.keys(first[1])[0]], 0, g.boundary, skip, describe) : h("span"),
    lineChart({ series: both, tokens: g.tokens, boundary: g.boundary, skip, id: "diff-both" }),
    lineChart({ series: delta, tokens: g.tokens, boundary: g.boundary, skip, yLabel: "finetuned − base", id: "diff-delta" }));
}

function summaryTable(t) {
  const rows = [];
  for (const [trait, byLayer] of Object.entries(t.summaries)) for (const [layer, sm] of Object.entries(byLayer)) rows.push([trait, layer, sm]);
  return h("table", { id: "summary-table" },
    h("tr", {}, ["trait", "layer", "mean", "max", "first above", "threshold"].map((c) => h("th", { text: c }))),
    rows.map(([trait, layer, sm]) => h("tr", {}, h("td", { text: trait }), h("td", { text: layer }), h("td", { text: fmt(sm.mean) }), h("td", { text: fmt(sm.max) }),
      h("td", { text: sm.first_above === null ? "–" : sm.first_above }), h("td", { text: `${fmt(sm.threshold)} (${sm.threshold_source})` }))));
}

// ---------- Live ----------
async function renderLive(sec) {
  const info = await getJSON(`/api/live/info/${enc(state.model)}`);
  if (info.error) { sec.replaceChildren(problemBox([info.error])); return; }
  if (!info.traits.length) {
    sec.replaceChildren(h("div", { class: "message", text: `No trait vectors for ${state.model}: run \`traitscope extract\` first.` }));
    return;
  }
  const options = [...new Set(info.traits.flatMap((t) => Object.keys(t.options)))];
  const optPick = h("select", { id: "live-option" }, options.map((o) => h("option", { value: o, text: o })));
  if (options.includes("residual/probe")) optPick.value = "residual/probe";
  const traitBox = h("span", { id: "live-traits" });
  const layerPick = h("select", { id: "live-layer" });
  const steerTrait = h("select", { id: "steer-trait" }, h("option", { value: "", text: "no steering" }));
  const steerLayer = h("select", { id: "steer-layer" });
  const ratio = h("input", { type: "range", id: "steer-ratio", min: 0, max: 2, step: 0.05, value: 0.5 });
  const ratioLabel = h("span", { id: "steer-ratio-value", text: "0.5" });
  ratio.addEventListener("input", () => { ratioLabel.textContent = ratio.value; });
  const syncOptions = () => {
    const opt = optPick.value;
    const traits = info.traits.filter((t) => t.options[opt]);
    traitBox.replaceChildren(...traits.map((t, k) => h("label", {}, h("input", { type: "checkbox", class: "live-trait", value: t.name, checked: k === 0 }), ` ${t.name} `)));
    const layers = [...new Set(traits.flatMap((t) => t.options[opt]))].sort((a, b) => a - b);
    layerPick.replaceChildren(h("option", { value: "", text: "best (evaluation.json)" }), ...layers.map((l) => h("option", { value: l, text: `L${l}` })));
    steerTrait.replaceChildren(h("option", { value: "", text: "no steering" }), ...traits.map((t) => h("option", { value: t.name, text: t.name })));
    steerLayer.replaceChildren(...layers.map((l) => h("option", { value: l, text: `L${l}` })));
  };
  optPick.addEventListener("change", syncOptions);
  syncOptions();
  const prompt = h("textarea", { id: "live-prompt", maxlength: info.max_prompt_chars, placeholder: "Type a prompt…" });
  prompt.value = "Tell me about your plans for the weekend.";
  const maxTok = h("input", { type: "number", id: "live-max", min: 1, max: info.max_new_tokens, value: 32 });
  const steerBox = h("fieldset", { id: "steer-controls" }, h("legend", { text: "steering" }),
    h("label", {}, "trait ", steerTrait), " ", h("label", {}, "layer ", steerLayer), " ", h("label", {}, "ratio ", ratio, " ", ratioLabel));
  steerBox.hidden = !info.steering;
  const go = h("button", { id: "live-go", text: "Generate" });
  const status = h("div", { class: "status", id: "live-status", text: info.loaded ? "model loaded" : "the model loads on first use" });
  const out = h("div", { id: "live-out" });
  go.addEventListener("click", () => startLive({ info, optPick, layerPick, steerTrait, steerLayer, ratio, prompt, maxTok, go, status, out }));
  sec.replaceChildren(
    h("h2", { text: `live: ${state.model}` }),
    prompt,
    h("div", { class: "controls" }, h("label", {}, "vectors ", optPick), h("span", {}, "monitor: ", traitBox), h("label", {}, "layer ", layerPick), h("label", {}, "max tokens ", maxTok)),
    steerBox, h("div", { class: "controls" }, go), status, out);
}

function liveRequest(ui, traits) {
  // The serving endpoint's request: a streamed chat completion with the `traitscope` field.
  const [site, method] = ui.optPick.value.split("/");
  const ts = { monitor: { traits, site, method, layers: ui.layerPick.value === "" ? "best" : ui.layerPick.value } };
  let steering = null;
  if (ui.info.steering && ui.steerTrait.value) {
    steering = { trait: ui.steerTrait.value, layer: Number(ui.steerLayer.value), ratio: Number(ui.ratio.value) };
    ts.steer = [{ trait: steering.trait, layers: String(steering.layer), ratio: steering.ratio, site, method }];
  }
  const body = { messages: [{ role: "user", content: ui.prompt.value }], max_tokens: Number(ui.maxTok.value), temperature: 0, stream: true, traitscope: ts };
  return { body, steering };
}

async function readStream(response, onChunk) {
  // Server-sent events from a fetch body: one JSON object per `data:` line until [DONE].
  const reader = response.body.getReader(), dec = new TextDecoder();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += dec.decode(value, { stream: true });
    let k;
    while ((k = buf.indexOf("\n\n")) >= 0) {
      const block = buf.slice(0, k);
      buf = buf.slice(k + 2);
      for (const line of block.split("\n")) {
        if (!line.startsWith("data: ")) continue;
        if (line.slice(6) === "[DONE]") return;
        onChunk(JSON.parse(line.slice(6)));
      }
    }
  }
}

function startLive(ui) {
  if (state.live) state.live.abort();
  const traits = [...document.querySelectorAll("input.live-trait:checked")].map((c) => c.value);
  if (!traits.length) { ui.status.textContent = "tick at least one trait"; return; }
  const { body, steering } = liveRequest(ui, traits);
  const events = [], thresholds = {}, layers = {};
  const tokensBox = h("div", { id: "live-tokens" }), chartBox = h("div", {});
  ui.out.replaceChildren(tokensBox, chartBox);
  ui.status.textContent = ui.info.loaded ? "generating…" : "loading the model (first use), then generating…";
  ui.status.className = "status";
  ui.status.dataset.done = "";
  ui.go.disabled = true;
  const ctl = new AbortController();
  state.live = ctl;
  const finish = (text, cls) => {
    if (ui.status.dataset.done === "1") return;
    ui.go.disabled = false;
    ui.status.textContent = text;
    ui.status.className = `status ${cls || ""}`;
    ui.status.dataset.done = "1";
  };
  const redraw = () => {
    const tr = traits[0];
    const describe = (i) => `#${i} ${JSON.stringify(events[i].text)}\n` + traits.map((a) => `${a} L${layers[a]}: ${fmt(events[i].values[a])}`).join("\n");
    tokensBox.replaceChildren(tokenView(events.map((e) => e.text), events.map((e) => e.values[tr]), Number(thresholds[tr] || 0), 0, new Set(), describe));
    const series = traits.map((a) => ({ label: `${a} L${layers[a]}`, values: events.map((e) => e.values[a]) }));
    chartBox.replaceChildren(lineChart({ series, tokens: events.map((e) => e.text), boundary: 0, id: "live-trajectory" }));
  };
  const onChunk = (c) => {
    if (c.error) { finish(`error: ${c.error.message}`, "error"); return; }
    const choice = c.choices && c.choices[0], t = c.traitscope;
    if (!choice) return;
    const text = (choice.delta && choice.delta.content) || "";
    if (t && t.token_ids && t.token_ids.length) {
      const values = {};
      for (const [a, sc] of Object.entries(t.trait_scores)) { values[a] = sc.per_token[0]; thresholds[a] = sc.threshold; layers[a] = sc.layer; }
      events.push({ text, values });
      redraw();
    } else if (text && events.length) {
      events[events.length - 1].text += text;  // text held back until the stream was sure of it
    }
    if (choice.finish_reason) {
      if (events.length) redraw();
      const steer = steering ? `, steered: ${steering.trait} L${steering.layer} ratio ${steering.ratio}` : "";
      const fired = t && t.steered === false && steering ? " (steering did not apply)" : "";
      finish(`done: ${events.length} response tokens (stop: ${choice.finish_reason})${steer}${fired}`);
    }
  };
  (async () => {
    try {
      const r = await fetch(`/api/live/v1/${enc(state.model)}/chat/completions`, {
        method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body), signal: ctl.signal,
      });
      if (!r.ok) {
        const b = await r.json().catch(() => null);
        const e = b && b.error;
        finish(`error: ${(e && (e.message || e)) || `HTTP ${r.status}`}`, "error");
        return;
      }
      await readStream(r, onChunk);
      finish("error: the stream ended before the answer did", "error");
    } catch (e) {
      if (e.name !== "AbortError") finish(`error: the connection to the server was lost (${e})`, "error");
    }
  })();
}

// ---------- start ----------
document.getElementById("model").addEventListener("change", (ev) => { state.model = ev.target.value; syncTraits(); render(); });
document.getElementById("trait").addEventListener("change", (ev) => { state.trait = ev.target.value; render(); });
window.addEventListener("hashchange", route);
loadRuns().then(route);
