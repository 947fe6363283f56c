// alseg annotate: keyboard-only answers to a round's queries (see alseg/annotate/server.py for the API).
//
// The page shows the first unanswered query; one key press answers it and the next one appears.
// The seconds of an answer run from the moment its query is drawn to the key press that answers it.
// Test hooks: <body data-ready="1"> while a query is shown and keys are taken, data-query (its id),
// data-answered (count), data-done="1" once answers.csv is written.
//
// This file is the core, the same for every query unit: session and progress, the last answer, toasts,
// the skip and undo keys, the measured seconds, /api/answer and /api/undo, preloading, and drawing helpers.
// What a unit shows and which keys answer it is its *view*: a script beside the unit's Python module
// (its `page_script`, served as /unit/<unit>.js and listed in /api/session's `unit_scripts`). The core
// loads the views of the round's units before the first query; each registers itself:
//
//   alseg.registerUnit("<row unit>", view)   // the `unit` of queries.csv, the `unit` of a shown query
//
// The view's members (`query`: /api/state's `current`; `page`: the core's helpers, below):
//   question(query, page)      -> HTML of the question above the image (escape text with page.escapeHtml)
//   describe(query)            -> text of the meta line's "where" (after "<query id> · image <name> · ")
//   keyList(query, page)       -> the keys the side panel lists: [{key, answer, label, title?, on?}]
//                                 (`on`: shown as toggled); page.classKeys() gives the class keys
//   answerFor(key, query, page)-> the answer that `key` (KeyboardEvent.key) sends now, or null. The skip
//                                 keys never reach a view; the undo keys go to undoStep
//   draw(query, picture, page) -> mark the query on the main canvas (picture.scene: the image is drawn)
//                                 and draw the inset with page.drawInset, or not (it stays hidden).
//                                 Synchronous; also called again when the window is resized.
//                                 picture = {image: HTMLImageElement, scene, loaded: what load gave}
// Optional, for what a view needs beyond that:
//   load(query, page)          -> Promise of what draw needs besides the image (e.g. a region from
//                                 page.api); awaited once per shown query, before drawing
//   start(query, page)         -> the query is about to be shown (reset the view's own state)
//   takeStep(key, query, page) -> true when `key` is a step of an answer made of several key presses
//                                 (e.g. toggling a class; call page.renderKeys() to show it); asked when
//                                 answerFor gave null. The seconds still run until the answering key
//   undoStep(query, page)      -> true when an undo key took back a step of the view's own; false: the
//                                 core takes back the last answer
//
// `page` (frozen): session (/api/session), canvas (main), inset (zoom canvas), api(path), escapeHtml(text),
// kbd(key) (HTML of a key), classKeys() (one keyList item per class: answer = class id), classOfKey(key)
// (class id or null), renderKeys() (list the view's keys again), drawImage(canvas, image, sx, sy, sw, sh,
// scale) -> scene, drawInset(image, sx, sy, side, scale, title) -> scene of the inset, now shown,
// drawCrosshair(scene, y, x), decodeRegion(region) (of /api/region/<k>), drawRegion(scene, region).
// A scene maps image pixels onto a canvas: {canvas, ctx, scale, sx, sy, sw, sh, at(x, y) -> [cx, cy]}.
"use strict";

const RED = "#ff2d2d";
const REGION = "#ffd166";
const VIEW_MEMBERS = ["question", "describe", "keyList", "answerFor", "draw"];
const OPTIONAL_MEMBERS = ["load", "start", "takeStep", "undoStep"];

const el = (id) => document.getElementById(id);
const canvas = el("view");
const inset = el("zoom");

let session = null;       // /api/session
let current = null;       // the query shown
let picture = null;       // {query, image, loaded}: what the shown query is drawn from
let shownAt = 0;          // performance.now() when it was drawn
let busy = false;         // a request is in flight: keys wait
let listedKeys = "";      // the key list on the page (JSON), redrawn only when it changes
const classOfKey = new Map();
const images = new Map(); // url -> Promise<HTMLImageElement>
const views = new Map();  // row unit -> its view
const viewProblems = new Map(); // row unit -> why its view was refused

// -- views -----------------------------------------------------------------------------------------

function registerUnit(unit, view) {
  const missing = VIEW_MEMBERS.filter((name) => typeof (view && view[name]) !== "function");
  const odd = OPTIONAL_MEMBERS.filter((name) => view && view[name] !== undefined && typeof view[name] !== "function");
  const problems = [];
  if (missing.length) problems.push(`lacks ${missing.join(", ")}`);
  if (odd.length) problems.push(`has ${odd.join(", ")} that are not functions`);
  if (problems.length) {
    viewProblems.set(unit, `the view of ${unit} queries ${problems.join(" and ")}`);
    throw new Error(viewProblems.get(unit));
  }
  views.set(unit, view);
}

window.alseg = Object.freeze({ registerUnit });

function viewOf(query) {
  const view = views.get(query.unit);
  if (!view) throw new Error(`no view shows ${query.unit} queries`);
  return view;
}

function loadScript(url) {
  return new Promise((resolve, reject) => {
    const script = document.createElement("script");
    script.src = url;
    script.onload = () => resolve();
    script.onerror = () => reject(new Error(`cannot load ${url}`));
    document.head.appendChild(script);
  });
}

async function loadViews() {
  const scripts = Object.entries(session.unit_scripts || {});
  await Promise.all(scripts.map(([, url]) => loadScript(url)));
  for (const [unit, url] of scripts) {
    if (!views.has(unit)) {
      throw new Error(viewProblems.get(unit) || `${url} registered no view of ${unit} queries`);
    }
  }
}

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

// Draw `img`'s rectangle (sx, sy, sw, sh) onto `target` at `scale`; returns the image -> canvas mapping.
function drawImage(target, img, sx, sy, sw, sh, scale) {
  const ctx = target.getContext("2d");
  ctx.imageSmoothingEnabled = scale < 1;
  ctx.fillStyle = "#20232b";
  ctx.fillRect(0, 0, target.width, target.height);
  ctx.drawImage(img, sx, sy, sw, sh, 0, 0, sw * scale, sh * scale);
  return { canvas: target, ctx, scale, sx, sy, sw, sh, at: (x, y) => [(x - sx) * scale, (y - sy) * scale] };
}

// The square (sx, sy, side) of `img` on the inset canvas at `scale`, under `title`; shows the inset.
function drawInset(img, sx, sy, side, scale, title) {
  const scene = drawImage(inset, img, sx, sy, side, side, scale);
  el("zoom-title").textContent = title;
  el("zoom-panel").hidden = false;
  return scene;
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

// Red cross-hair through image pixel (y, x), with a gap so that the pixel itself stays visible.
function drawCrosshair(scene, y, x) {
  const [cx0, cy0] = scene.at(x, y);
  const s = scene.scale;
  const [cx, cy] = [cx0 + s / 2, cy0 + s / 2];
  const gap = s / 2 + 7;
  const path = new Path2D();
  path.moveTo(0, cy); path.lineTo(cx - gap, cy);
  path.moveTo(cx + gap, cy); path.lineTo(scene.canvas.width, cy);
  path.moveTo(cx, 0); path.lineTo(cx, cy - gap);
  path.moveTo(cx, cy + gap); path.lineTo(cx, scene.canvas.height);
  strokeTwice(scene.ctx, path, 2, RED);
  const box = new Path2D();
  const pad = 2.5;
  box.rect(cx0 - pad, cy0 - pad, s + 2 * pad, s + 2 * pad);
  strokeTwice(scene.ctx, box, 2, RED);
}

// A region of /api/region/<k> ({bbox, bits}) as {y0, x0, h, w, inside(y, x)} in image pixels.
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

// Outline the region along pixel edges, and dim what lies outside it (within the scene's rectangle).
function drawRegion(scene, region) {
  const { ctx, at, scale, sx, sy, sw, sh } = scene;
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

// The image on the main canvas, the inset hidden, then the view's marks (and inset).
function paint(query, view) {
  const img = picture.image;
  const W = img.naturalWidth, H = img.naturalHeight;
  const scale = displayScale(W, H);
  canvas.width = Math.round(W * scale);
  canvas.height = Math.round(H * scale);
  const scene = drawImage(canvas, img, 0, 0, W, H, scale);
  el("zoom-panel").hidden = true;
  view.draw(query, { image: img, scene, loaded: picture.loaded }, page);
}

async function drawQuery(query, view) {
  const [image, loaded] = await Promise.all([
    loadImage(query.image_url),
    view.load ? view.load(query, page) : undefined,
  ]);
  picture = { query, image, loaded };
  paint(query, view);
}

// -- page ----------------------------------------------------------------------------------------------

function kbd(key) {
  return `<kbd>${escapeHtml(session.key_labels[key] || key)}</kbd>`;
}

function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}

function classKeys() {
  return session.classes.map((name, id) => ({ key: session.keys[id], answer: String(id), label: name, title: `class ${id}` }));
}

function renderKeys() {
  if (!current) return;
  const items = viewOf(current).keyList(current, page);
  const listed = JSON.stringify(items);
  if (listed === listedKeys) return;   // unchanged: keep the list (and a key's flash)
  listedKeys = listed;
  const list = el("keymap");
  list.innerHTML = "";
  for (const { key, answer, label, title, on } of items) {
    const item = document.createElement("li");
    if (answer !== undefined) item.dataset.answer = String(answer);
    if (title) item.title = title;
    item.classList.toggle("on", Boolean(on));
    item.innerHTML = `${kbd(key)}<span>${escapeHtml(label)}</span>`;
    list.appendChild(item);
  }
}

const page = Object.freeze({
  get session() { return session; },
  canvas,
  inset,
  api: (path) => api(path),
  escapeHtml,
  kbd,
  classKeys,
  classOfKey: (key) => (classOfKey.has(key) ? classOfKey.get(key) : null),
  renderKeys,
  drawImage,
  drawInset,
  drawCrosshair,
  decodeRegion,
  drawRegion,
});

function renderSession() {
  el("file").textContent = session.queries_file;
  el("annotator").innerHTML = `annotator <b>${escapeHtml(session.annotator)}</b>`;
  session.keys.forEach((key, id) => classOfKey.set(key, id));
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

function renderQuestion(query, view) {
  el("meta").textContent = `${query.query_id} · image ${query.image} · ${view.describe(query)}`;
  renderKeys();
  el("question").innerHTML = view.question(query, page);
}

async function show(state) {
  renderProgress(state);
  if (state.done) return finish(state);
  current = state.current;
  const view = viewOf(current);
  if (view.start) view.start(current, page);
  renderQuestion(current, view);
  await drawQuery(current, view);
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
  const item = Array.from(document.querySelectorAll(".keymap li")).find((li) => li.dataset.answer === answer);
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

function onKey(event) {
  if (event.ctrlKey || event.metaKey || event.altKey || !session) return;
  const key = event.key;
  const ours = session.undo_keys.includes(key) || session.skip_keys.includes(key);
  if (ours) event.preventDefault();   // no scrolling on Space, no "back" on Backspace
  if (event.repeat || busy) return;
  const view = current && views.get(current.unit);
  if (session.undo_keys.includes(key)) {
    if (view && view.undoStep && view.undoStep(current, page)) return;
    send("/api/undo", {}, "Undone");
    return;
  }
  if (!view) return;
  const answer = session.skip_keys.includes(key) ? "skip" : view.answerFor(key, current, page);
  if (answer === null || answer === undefined) {
    if (view.takeStep && view.takeStep(key, current, page)) {
      event.preventDefault();
      return;
    }
    if (key.length === 1) toast(`The key ${key} answers nothing here`);
    return;
  }
  event.preventDefault();
  const seconds = (performance.now() - shownAt) / 1000;
  flashKey(String(answer));
  send("/api/answer", { query_id: current.query_id, answer: String(answer), seconds });
}

async function start() {
  try {
    session = await api("/api/session");
    renderSession();
    await loadViews();
    await show(await api("/api/state"));
  } catch (error) {
    el("question").textContent = `Cannot load the queries: ${error.message}`;
    toast(error.message, true);
  }
}

document.addEventListener("keydown", onKey);
window.addEventListener("resize", () => {
  if (current && !busy && picture && picture.query === current) paint(current, viewOf(current));
});
start();
