// alseg annotate: keyboard-only answers to a round's queries (see alseg/annotate/server.py for the API).
//
// The page shows the first unanswered query; one key press answers it and the next one appears.
// The seconds of an answer run from the moment its query is drawn to the key press.
// Test hooks: <body data-ready="1"> while a query is shown and keys are taken, data-query (its id),
// data-answered (count), data-done="1" once answers.csv is written.
"use strict";

const ZOOM = 8;           // inset magnification for pixel queries
const ZOOM_PIXELS = 22;   // inset canvas side in image pixels (176 / 8)
const RED = "#ff2d2d";
const REGION = "#ffd166";

const el = (id) => document.getElementById(id);
const view = el("view");
const zoom = el("zoom");

let session = null;       // /api/session
let current = null;       // the query shown
let shownAt = 0;          // performance.now() when it was drawn
let busy = false;         // a request is in flight: keys wait
const classOfKey = new Map();
const images = new Map(); // url -> Promise<HTMLImageElement>

// -- server ------------------------------------------------------------------------------------------

async function api(path, body) {
  const init = body === undefined ? {} : {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  };
  const response = await fetch(path, init);
  const data = await response.json().catch(() => ({ error: `HTTP ${response.status}` }));
  if (!response.ok) throw new Error(data.error || `HTTP ${response.status}`);
  return data;
}

function loadImage(url) {
  if (!images.has(url)) {
    images.set(url, new Promise((resolve, reject) => {
      const img = new Image();
      img.onload = () => resolve(img);
      img.onerror = () => { images.delete(url); reject(new Error(`cannot load ${url}`)); };
      img.src = url;
    }));
  }
  return images.get(url);
}

// -- drawing -----------------------------------------------------------------------------------------

function displayScale(width, height) {
  const room = el("main").getBoundingClientRect();
  const maxW = Math.max(200, room.width - 300 - 64);
  const maxH = Math.max(200, room.height - 150);
  const fit = Math.min(maxW / width, maxH / height);
  return fit >= 1 ? Math.floor(fit) : fit;   // whole-number zoom keeps pixels square
}

// Draw `img`'s rectangle (sx, sy, sw, sh) onto `canvas` at `scale`; returns image -> canvas mapping.
function drawImage(canvas, img, sx, sy, sw, sh, scale) {
  const ctx = canvas.getContext("2d");
  ctx.imageSmoothingEnabled = scale < 1;
  ctx.fillStyle = "#20232b";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  ctx.drawImage(img, sx, sy, sw, sh, 0, 0, sw * scale, sh * scale);
  return { ctx, at: (x, y) => [(x - sx) * scale, (y - sy) * scale], scale };
}

function strokeTwice(ctx, path, width, color) {
  ctx.lineCap = "square";
  ctx.strokeStyle = "rgba(0, 0, 0, 0.55)";
  ctx.lineWidth = width + 2;
  ctx.stroke(path);
  ctx.strokeStyle = color;
  ctx.lineWidth = width;
  ctx.stroke(path);
}

// Red cross-hair through pixel (y, x), with a gap so that the pixel itself stays visible.
function drawCrosshair(scene, y, x, canvas) {
  const [cx0, cy0] = scene.at(x, y);
  const s = scene.scale;
  const [cx, cy] = [cx0 + s / 2, cy0 + s / 2];
  const gap = s / 2 + 7;
  const path = new Path2D();
  path.moveTo(0, cy); path.lineTo(cx - gap, cy);
  path.moveTo(cx + gap, cy); path.lineTo(canvas.width, cy);
  path.moveTo(cx, 0); path.lineTo(cx, cy - gap);
  path.moveTo(cx, cy + gap); path.lineTo(cx, canvas.height);
  strokeTwice(scene.ctx, path, 2, RED);
  const box = new Path2D();
  const pad = 2.5;
  box.rect(cx0 - pad, cy0 - pad, s + 2 * pad, s + 2 * pad);
  strokeTwice(scene.ctx, box, 2, RED);
}

function decodeRegion(region) {
  const [y0, x0, h, w] = region.bbox;
  const bytes = Uint8Array.from(atob(region.bits), (c) => c.charCodeAt(0));
  const inside = (y, x) => {
    if (y < y0 || x < x0 || y >= y0 + h || x >= x0 + w) return false;
    const i = (y - y0) * w + (x - x0);
    return (bytes[i >> 3] & (128 >> (i & 7))) !== 0;
  };
  return { y0, x0, h, w, inside };
}

// Outline the region along pixel edges, and dim what lies outside it.
function drawRegion(scene, region, canvas, sx, sy, sw, sh) {
  const { ctx, at, scale } = scene;
  const shade = document.createElement("canvas");
  shade.width = sw; shade.height = sh;
  const sctx = shade.getContext("2d");
  const pixels = sctx.createImageData(sw, sh);
  for (let y = 0; y < sh; y++) {
    for (let x = 0; x < sw; x++) {
      if (!region.inside(y + sy, x + sx)) pixels.data[(y * sw + x) * 4 + 3] = 110;
    }
  }
  sctx.putImageData(pixels, 0, 0);
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(shade, 0, 0, sw * scale, sh * scale);

  const path = new Path2D();
  for (let y = region.y0; y < region.y0 + region.h; y++) {
    for (let x = region.x0; x < region.x0 + region.w; x++) {
      if (!region.inside(y, x)) continue;
      const [px, py] = at(x, y);
      const [qx, qy] = at(x + 1, y + 1);
      if (!region.inside(y - 1, x)) { path.moveTo(px, py); path.lineTo(qx, py); }
      if (!region.inside(y + 1, x)) { path.moveTo(px, qy); path.lineTo(qx, qy); }
      if (!region.inside(y, x - 1)) { path.moveTo(px, py); path.lineTo(px, qy); }
      if (!region.inside(y, x + 1)) { path.moveTo(qx, py); path.lineTo(qx, qy); }
    }
  }
  strokeTwice(ctx, path, 2, REGION);
}

async function drawQuery(query) {
  const img = await loadImage(query.image_url);
  const region = query.unit === "superpixel" ? decodeRegion(await api(query.region_url)) : null;
  const W = img.naturalWidth, H = img.naturalHeight;
  const scale = displayScale(W, H);
  view.width = Math.round(W * scale);
  view.height = Math.round(H * scale);
  const scene = drawImage(view, img, 0, 0, W, H, scale);

  const zoomPanel = el("zoom-panel");
  zoomPanel.hidden = query.unit === "binary";
  if (query.unit === "pixel") {
    drawCrosshair(scene, query.y, query.x, view);
    const half = Math.floor(ZOOM_PIXELS / 2);
    const inset = drawImage(zoom, img, query.x - half, query.y - half, ZOOM_PIXELS, ZOOM_PIXELS, ZOOM);
    drawCrosshair(inset, query.y, query.x, zoom);
    el("zoom-title").textContent = `Zoom ×${ZOOM}`;
  } else if (query.unit === "superpixel") {
    drawRegion(scene, region, view, 0, 0, W, H);
    const side = Math.max(region.h, region.w, 8) + 6;
    const zscale = zoom.width / side;
    const sx = Math.round(region.x0 + region.w / 2 - side / 2);
    const sy = Math.round(region.y0 + region.h / 2 - side / 2);
    const inset = drawImage(zoom, img, sx, sy, side, side, zscale);
    drawRegion(inset, region, zoom, sx, sy, side, side);
    el("zoom-title").textContent = `Region ×${zscale.toFixed(1)}`;
  }
}

// -- page ----------------------------------------------------------------------------------------------

function kbd(key) {
  return `<kbd>${escapeHtml(session.key_labels[key] || key)}</kbd>`;
}

function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}

function renderSession() {
  el("file").textContent = session.queries_file;
  el("annotator").innerHTML = `annotator <b>${escapeHtml(session.annotator)}</b>`;
  const list = el("keymap");
  list.innerHTML = "";
  session.classes.forEach((name, id) => {
    const key = session.keys[id];
    classOfKey.set(key, id);
    const item = document.createElement("li");
    item.dataset.answer = String(id);
    item.title = `class ${id}`;
    item.innerHTML = `${kbd(key)}<span>${escapeHtml(name)}</span>`;
    list.appendChild(item);
  });
  el("commands").innerHTML =
    `<span>${session.skip_keys.map(kbd).join(" or ")} skip (cannot tell)</span>` +
    `<span>${session.undo_keys.map(kbd).join(" or ")} undo the last answer</span>`;
}

function renderProgress(state) {
  el("count").textContent = `${state.answered} / ${state.total}`;
  el("bar-fill").style.width = `${state.total ? (100 * state.answered) / state.total : 100}%`;
  document.body.dataset.answered = String(state.answered);
  const last = state.last;
  el("last").innerHTML = last
    ? `<b>${escapeHtml(last.label)}</b> for ${escapeHtml(last.query_id)} · ${session.undo_keys.map(kbd).join("/")} to undo`
    : "none yet";
}

function renderQuestion(query) {
  const where = query.unit === "pixel" ? `pixel (row ${query.y}, column ${query.x})`
    : query.unit === "superpixel" ? `superpixel ${query.superpixel}` : `class ${query.class_id}`;
  el("meta").textContent = `${query.query_id} · image ${query.image} · ${where}`;
  el("keymap").hidden = query.unit === "binary";
  el("binary-keys").hidden = query.unit !== "binary";
  el("question").innerHTML = query.unit === "pixel"
    ? "What is the class of the pixel under the <b>red cross-hair</b>?"
    : query.unit === "superpixel"
      ? "What is the main class of the <b>outlined region</b>?"
      : `Is there any <span class="cls">${escapeHtml(query.class_name)}</span> in this image?`;
}

async function show(state) {
  renderProgress(state);
  if (state.done) return finish(state);
  current = state.current;
  renderQuestion(current);
  await drawQuery(current);
  state.preload.forEach((url) => loadImage(url).catch(() => {}));
  await new Promise((resolve) => requestAnimationFrame(() => resolve()));
  shownAt = performance.now();
  document.body.dataset.query = current.query_id;
  document.body.dataset.ready = "1";
}

function finish(state) {
  current = null;
  document.body.dataset.ready = "0";
  el("main").hidden = true;
  el("done-title").textContent = `All ${state.total} queries answered`;
  el("done-file").textContent = state.answers_file;
  el("done").hidden = false;
  document.body.dataset.done = "1";
}

let toastTimer = 0;
function toast(message, isError = false) {
  const box = el("toast");
  box.textContent = message;
  box.classList.toggle("error", isError);
  box.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { box.hidden = true; }, isError ? 5000 : 1400);
}

function flashKey(answer) {
  const item = document.querySelector(`.keymap li[data-answer="${answer}"]`);
  if (!item) return;
  item.classList.add("hit");
  setTimeout(() => item.classList.remove("hit"), 250);
}

async function send(path, body, message) {
  busy = true;
  document.body.dataset.ready = "0";
  try {
    await show(await api(path, body));
    if (message) toast(message);
  } catch (error) {
    toast(error.message, true);
    await show(await api("/api/state")).catch((e) => toast(e.message, true));
  } finally {
    busy = false;
  }
}

function answerFor(key) {
  if (session.skip_keys.includes(key)) return "skip";
  if (current.unit === "binary") {
    if (session.yes_keys.includes(key)) return "yes";
    if (session.no_keys.includes(key)) return "no";
    return null;
  }
  return classOfKey.has(key) ? String(classOfKey.get(key)) : null;
}

function onKey(event) {
  if (event.ctrlKey || event.metaKey || event.altKey || !session) return;
  const key = event.key;
  const ours = session.undo_keys.includes(key) || session.skip_keys.includes(key);
  if (ours) event.preventDefault();   // no scrolling on Space, no "back" on Backspace
  if (event.repeat || busy) return;
  if (session.undo_keys.includes(key)) {
    send("/api/undo", {}, "Undone");
    return;
  }
  if (!current) return;
  const answer = answerFor(key);
  if (answer === null) {
    if (key.length === 1) toast(`The key ${key} answers nothing here`);
    return;
  }
  event.preventDefault();
  const seconds = (performance.now() - shownAt) / 1000;
  flashKey(answer);
  send("/api/answer", { query_id: current.query_id, answer, seconds });
}

async function start() {
  try {
    session = await api("/api/session");
    renderSession();
    await show(await api("/api/state"));
  } catch (error) {
    el("question").textContent = `Cannot load the queries: ${error.message}`;
    toast(error.message, true);
  }
}

document.addEventListener("keydown", onKey);
window.addEventListener("resize", () => { if (current && !busy) drawQuery(current); });
start();
