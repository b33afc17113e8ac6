// sesim view: the page. Plain JavaScript, no libraries. The server (sesim/view/server.py) computes
// every map; this file draws them. Heat colours are blended over the image exactly as
//   out = round(image * (1 - alpha) + ramp[round(t * 255)] * alpha),  t = (v - lo) / (hi - lo),
// one feature cell = one block of image pixels (cell of pixel (x, y) = (y * h / H, x * w / W), floored),
// so a test can recompute every pixel. window.sesimView exposes the state (for tests and curious users).
"use strict";

const S = {
  info: null, image: 0, point: null, hover: null, layer: null, mode: "run", error: false,
  variants: [], panels: [], inflight: false, pending: null, draws: 0, lastUrl: "", lastMap: null,
  lastError: null, lastDownload: null, ready: false, message: "", clickedAt: null, clickToDrawMs: null,
};
window.sesimView = S;

const $ = (id) => document.getElementById(id);

function status(text, isError) {
  S.message = text;
  const el = $("status");
  el.textContent = text;
  el.className = isError ? "error" : "";
}

async function getJSON(url) {
  const response = await fetch(url);
  const data = await response.json();
  if (!response.ok) throw new Error(data.error || response.statusText);
  return data;
}

function loadImage(url) {
  return new Promise((resolve, reject) => {
    const img = new Image();
    img.onload = () => resolve(img);
    img.onerror = () => {
      fetch(url).then((r) => r.json()).then((d) => reject(new Error(d.error || "image failed")),
        () => reject(new Error("image failed")));
    };
    img.src = url;
  });
}

function el(tag, attrs, text) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

// ---------------------------------------------------------------------------------- layout
function describeRun(run, k) {
  const steps = run.steps.length > 1 ? `, ${run.steps.length} steps` : "";
  const line = el("div");
  line.append(el("b", {}, `run ${k + 1}: ${run.name}`),
    ` (${run.method}, ${run.mode}, structure ${run.structure}${steps}) maps from `);
  line.append(el("span", run.own_loss ? {} : { class: "warn" }, run.loss_note));
  return line;
}

function scaleFor(image) {
  return Math.max(1, Math.floor(320 / Math.max(image.width, image.height)));
}

function buildPanels() {
  const box = $("panels");
  box.textContent = "";
  S.panels = [];
  const add = (kind, run, title) => {
    const fig = el("figure", { class: "panel", "data-kind": kind, "data-run": String(run) });
    fig.append(el("h3", {}, title));
    const stack = el("div", { class: "stack" });
    const heat = el("canvas", { class: "heat" });
    const marks = el("canvas", { class: "marks" });
    stack.append(heat, marks);
    fig.append(stack);
    const panel = { kind, run, fig, heat, marks, base: null, caption: el("figcaption"), title };
    if (kind === "translation") panel.controls = runControls(run, panel);
    fig.append(panel.caption);
    box.append(fig);
    marks.addEventListener("mousemove", (ev) => onPointer(ev, panel, false));
    marks.addEventListener("click", (ev) => onPointer(ev, panel, true));
    marks.addEventListener("mouseleave", onLeave);
    S.panels.push(panel);
  };
  add("input", 0, "input");
  S.info.runs.forEach((run, k) => add("translation", k, `translation: run ${k + 1} (${run.name})`));
}

function runControls(k, panel) {
  const run = S.info.runs[k];
  const box = el("div", { class: "runcontrols" });
  if (run.steps.length > 1) {
    const slider = el("input", { type: "range", min: "0", max: String(run.steps.length - 1), step: "1",
      class: "step", "data-run": String(k) });
    slider.value = String(run.steps.findIndex((s) => s.step === S.variants[k].step));
    const label = el("span", { class: "steplabel" });
    const show = () => {
      const s = run.steps[Number(slider.value)];
      label.textContent = `step ${s.step}` + (s.kind === "snapshot" ? " (sample snapshot)" : "");
    };
    show();
    slider.addEventListener("input", show);
    slider.addEventListener("change", () => {
      S.variants[k].step = run.steps[Number(slider.value)].step;
      refreshTranslation(k);
    });
    box.append("step", slider, label);
  }
  if (run.multimodal) {
    const label = el("span", { class: "stylelabel" });
    const show = () => {
      const st = S.variants[k].style;
      label.textContent = st === "ref" ? "style of the --style-from image" : `style ${st}`;
    };
    const button = el("button", { type: "button", class: "newstyle", "data-run": String(k) }, "new style");
    button.addEventListener("click", () => {
      const st = S.variants[k].style;
      S.variants[k].style = st === "ref" ? 0 : st + 1;
      show();
      refreshTranslation(k);
    });
    box.append(button);
    if (run.reference_style) {
      const ref = el("button", { type: "button" }, "--style-from");
      ref.addEventListener("click", () => { S.variants[k].style = "ref"; show(); refreshTranslation(k); });
      box.append(ref);
    }
    show();
    box.append(label);
  }
  panel.fig.append(box);
  return box;
}

function buildStrip() {
  const strip = $("strip");
  S.info.images.forEach((image) => {
    const button = el("button", { type: "button", title: image.name, "data-image": String(image.id) });
    button.append(el("img", { src: `/api/image?image=${image.id}`, alt: image.name }));
    button.addEventListener("click", () => selectImage(image.id));
    strip.append(button);
  });
}

// ---------------------------------------------------------------------------------- images
function variantQuery() {
  return S.variants.map((v, k) => `&step${k}=${v.step}&style${k}=${encodeURIComponent(v.style)}`).join("");
}

function translationUrl(k) {
  const v = S.variants[k];
  return `/api/translation?image=${S.image}&run=${k}&step=${v.step}&style=${encodeURIComponent(v.style)}`;
}

function drawBase(panel, img) {
  const image = S.info.images[S.image];
  const k = scaleFor(image);
  for (const c of [panel.heat, panel.marks]) {
    c.width = image.width * k;
    c.height = image.height * k;
  }
  const ctx = panel.heat.getContext("2d");
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(img, 0, 0, image.width * k, image.height * k);
  panel.base = ctx.getImageData(0, 0, panel.heat.width, panel.heat.height);
  panel.scale = k;
  panel.fig.style.maxWidth = `${Math.max(panel.heat.width, 240)}px`;
  panel.marks.getContext("2d").clearRect(0, 0, panel.marks.width, panel.marks.height);
}

async function loadPanel(panel) {
  const url = panel.kind === "input" ? `/api/image?image=${S.image}` : translationUrl(panel.run);
  try {
    drawBase(panel, await loadImage(url));
    return true;
  } catch (err) {
    panel.base = null;
    panel.heat.getContext("2d").clearRect(0, 0, panel.heat.width, panel.heat.height);
    panel.caption.textContent = `not available: ${err.message}`;
    return false;
  }
}

async function selectImage(id) {
  S.image = id;
  S.point = null;
  S.hover = null;
  document.querySelectorAll("#strip button").forEach((b) => b.classList.toggle("selected", Number(b.dataset.image) === id));
  status(`loading ${S.info.images[id].name} ...`);
  const ok = await Promise.all(S.panels.map(loadPanel));
  S.panels.forEach((p, i) => { if (ok[i]) p.caption.textContent = p.kind === "input" ? S.info.images[id].name : ""; });
  status(ok.every(Boolean) ? "hover or click a point" : "some translations are not available at this step", !ok.every(Boolean));
  await redraw();
  S.ready = true;
}

async function refreshTranslation(k) {
  const panel = S.panels.find((p) => p.kind === "translation" && p.run === k);
  if (await loadPanel(panel)) panel.caption.textContent = "";
  await redraw();
}

// ------------------------------------------------------------------------------------ maps
function blend(panel, grid) {
  const image = S.info.images[S.image];
  const out = new ImageData(new Uint8ClampedArray(panel.base.data), panel.base.width, panel.base.height);
  const k = panel.scale, a = S.info.alpha, ramp = S.info.ramp;
  const span = Math.max(grid.hi - grid.lo, 1e-12);
  for (let Y = 0; Y < out.height; Y++) {
    const r = Math.floor((Math.floor(Y / k) * grid.h) / image.height);
    for (let X = 0; X < out.width; X++) {
      const c = Math.floor((Math.floor(X / k) * grid.w) / image.width);
      const v = grid.values[r * grid.w + c];
      if (v === null) continue;
      const t = Math.min(1, Math.max(0, (v - grid.lo) / span));
      const colour = ramp[Math.round(t * 255)];
      const i = 4 * (Y * out.width + X);
      for (let ch = 0; ch < 3; ch++) out.data[i + ch] = Math.round(out.data[i + ch] * (1 - a) + colour[ch] * a);
    }
  }
  panel.heat.getContext("2d").putImageData(out, 0, 0);
}

function clearHeat(panel) {
  if (panel.base) panel.heat.getContext("2d").putImageData(panel.base, 0, 0);
  panel.marks.getContext("2d").clearRect(0, 0, panel.marks.width, panel.marks.height);
}

function ring(panel, point, pinned) {
  const ctx = panel.marks.getContext("2d");
  ctx.clearRect(0, 0, panel.marks.width, panel.marks.height);
  const k = panel.scale;
  const x = (point.x + 0.5) * k, y = (point.y + 0.5) * k, radius = Math.max(5, 1.5 * k);
  ctx.lineWidth = 3;
  ctx.strokeStyle = "black";
  ctx.beginPath(); ctx.arc(x, y, radius + 1, 0, 2 * Math.PI); ctx.stroke();
  ctx.lineWidth = 2;
  ctx.strokeStyle = pinned ? "white" : "#ddd";
  ctx.beginPath(); ctx.arc(x, y, radius, 0, 2 * Math.PI); ctx.stroke();
}

function mapUrl(point) {
  return `/api/map?image=${S.image}&x=${point.x}&y=${point.y}&layer=${encodeURIComponent(S.layer)}` +
    `&mode=${S.mode}${variantQuery()}`;
}

async function requestMap(point) {
  if (S.inflight) { S.pending = point; return; }
  S.inflight = true;
  const url = mapUrl(point);
  S.lastUrl = url;
  try {
    const data = await getJSON(url);
    if (data.image === S.image && !S.error) drawMap(data, point);
  } catch (err) {
    status(err.message, true);
  } finally {
    S.inflight = false;
    if (S.pending) { const next = S.pending; S.pending = null; requestMap(next); }
  }
}

function drawMap(data, point) {
  S.lastMap = data;
  const pinned = S.point && S.point.x === point.x && S.point.y === point.y;
  for (const panel of S.panels) {
    const grid = data.panels.find((g) => g.kind === panel.kind && g.run === panel.run);
    if (!panel.base || !grid) continue;
    blend(panel, grid);
    ring(panel, point, pinned);
    const win = grid.window ? `${grid.window}×${grid.window} window` : "global map";
    const range = `${grid.layer} ${grid.h}×${grid.w}, ${win}, colours ${grid.lo.toFixed(2)} .. ${grid.hi.toFixed(2)}`;
    if (panel.kind === "input") {
      panel.caption.textContent = `query x=${data.x}, y=${data.y} (cell ${grid.row}, ${grid.col}); ${range}`;
    } else {
      const loss = data.losses.find((l) => l.run === panel.run);
      const what = loss.distance === "cos" ? "1 − cos(input map, translation map)" : "mean |input map − translation map|";
      panel.caption.textContent = `structure loss at this query: ${loss.value.toFixed(4)} (${what}); ${range}`;
    }
  }
  if (pinned && S.clickedAt !== null) {  // click -> drawn, as the user sees it
    S.clickToDrawMs = performance.now() - S.clickedAt;
    S.clickedAt = null;
  }
  status(`maps in ${data.ms} ms on the server`);
  S.draws += 1;
}

async function drawErrors() {
  const url = `/api/error?image=${S.image}${variantQuery()}`;
  S.lastUrl = url;
  status("computing the error maps ...");
  try {
    const data = await getJSON(url);
    if (!S.error || data.image !== S.image) return;
    S.lastError = data;
    for (const panel of S.panels) {
      clearHeat(panel);
      const grid = data.panels.find((g) => g.kind === panel.kind && g.run === panel.run);
      if (panel.kind === "input") panel.caption.textContent = "error maps: the structure loss of every point at once";
      if (!panel.base || !grid) continue;
      blend(panel, grid);
      panel.caption.textContent = `error map (all layers of the run's loss): mean ${grid.mean.toFixed(4)}, ` +
        `colours 0 .. ${grid.hi.toFixed(3)}`;
    }
    status(`error maps in ${data.ms} ms on the server`);
    S.draws += 1;
  } catch (err) {
    status(err.message, true);
  }
}

async function redraw() {
  if (S.error) return drawErrors();
  if (S.point) return requestMap(S.point);
  S.panels.forEach(clearHeat);
}

function pointOf(ev, panel) {
  const rect = panel.marks.getBoundingClientRect();
  const image = S.info.images[S.image];
  const X = ((ev.clientX - rect.left) * panel.marks.width) / rect.width;
  const Y = ((ev.clientY - rect.top) * panel.marks.height) / rect.height;
  const clamp = (v, n) => Math.min(n - 1, Math.max(0, Math.floor(v)));
  return { x: clamp(X / panel.scale, image.width), y: clamp(Y / panel.scale, image.height) };
}

function onPointer(ev, panel, click) {
  if (!panel.base) return;
  const point = pointOf(ev, panel);
  if (click) {
    S.clickedAt = performance.now();
    S.point = point;
    if (S.error) { S.error = false; $("errormap").checked = false; }
    requestMap(point);
    return;
  }
  if (S.error) return;
  if (S.hover && S.hover.x === point.x && S.hover.y === point.y) return;
  S.hover = point;
  requestMap(point);
}

function onLeave() {
  S.hover = null;
  if (!S.error) redraw();
}

// -------------------------------------------------------------------------------- download
function composeView() {
  const shown = S.panels.filter((p) => p.base);
  const gap = 12, top = 22, bottom = 40;
  const width = shown.reduce((w, p) => w + p.heat.width + gap, gap);
  const height = top + Math.max(...shown.map((p) => p.heat.height)) + bottom;
  const canvas = document.createElement("canvas");
  canvas.width = width;
  canvas.height = height;
  const ctx = canvas.getContext("2d");
  ctx.fillStyle = "white";
  ctx.fillRect(0, 0, width, height);
  ctx.fillStyle = "black";
  ctx.font = "13px sans-serif";
  let x = gap;
  for (const p of shown) {
    ctx.fillText(p.title, x, 15, p.heat.width);
    ctx.drawImage(p.heat, x, top);
    ctx.drawImage(p.marks, x, top);
    ctx.font = "11px sans-serif";
    const words = p.caption.textContent, half = Math.ceil(words.length / 2);
    ctx.fillText(words.slice(0, half), x, top + p.heat.height + 14, p.heat.width);
    ctx.fillText(words.slice(half), x, top + p.heat.height + 28, p.heat.width);
    ctx.font = "13px sans-serif";
    x += p.heat.width + gap;
  }
  return canvas;
}

function download() {
  const canvas = composeView();
  const image = S.info.images[S.image];
  const what = S.error ? "errormap" : S.point ? `${S.layer}-x${S.point.x}-y${S.point.y}` : "images";
  const name = `sesim-view-${image.name.replace(/[^A-Za-z0-9_.-]+/g, "_")}-${what}.png`;
  canvas.toBlob((blob) => {
    const a = el("a", { href: URL.createObjectURL(blob), download: name });
    document.body.append(a);
    a.click();
    a.remove();
    S.lastDownload = { name, width: canvas.width, height: canvas.height, bytes: blob.size };
  }, "image/png");
}

// ------------------------------------------------------------------------------------ start
async function start() {
  try {
    S.info = await getJSON("/api/info");
  } catch (err) {
    status(`cannot reach the sesim view server: ${err.message}`, true);
    return;
  }
  S.variants = S.info.defaults.map((v) => ({ step: v.step, style: v.style }));
  $("runs").append(...S.info.runs.map(describeRun));
  const layer = $("layer");
  for (const name of S.info.runs[0].layers) layer.append(el("option", { value: name }, name));
  S.layer = S.info.runs[0].layers[0];
  layer.addEventListener("change", () => { S.layer = layer.value; redraw(); });
  $("mode").addEventListener("change", (ev) => { S.mode = ev.target.value; redraw(); });
  $("errormap").addEventListener("change", (ev) => { S.error = ev.target.checked; if (!S.error) S.panels.forEach(clearHeat); redraw(); });
  $("download").addEventListener("click", download);
  buildPanels();
  buildStrip();
  await selectImage(0);
}

start();
