"use strict";
// SG-I2V trajectory editor (docs/editor.md). The model of the page is the JSON format of
// guidance/trajectory.py: pixels of the input image (x right, y down), one first-frame box
// [x0, y0, x1, y1] per box and keyframes {frame: [x, y]} of its centre; in frame n the box is the
// first-frame box moved by centre_n - centre_0. The canvas shows the image at the generation size's aspect.

const TOKEN = new URLSearchParams(location.search).get("token") || "";
const $ = (id) => document.getElementById(id);
const canvas = $("canvas"), ctx = canvas.getContext("2d");
const HANDLE = 7;                  // display px: how near a corner a press resizes the box
const MIN_BOX = 4;                 // display px: a smaller drag draws no box
const state = {config: null, image: null, imageSize: [1, 1], boxes: [], selected: -1, frame: 0,
               comment: undefined, drag: null, player: null, polling: false};

// ------------------------------------------------------------------ server
function withToken(url) {
  return url + (url.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(TOKEN);
}

async function api(path, options = {}) {
  const headers = Object.assign({"X-Token": TOKEN}, options.headers || {});
  const response = await fetch(path, Object.assign({}, options, {headers}));
  let body = null;
  try { body = await response.json(); } catch (e) { body = {error: `${response.status} ${response.statusText}`}; }
  return {status: response.status, ok: response.ok, body};
}

// ------------------------------------------------------------------ paths (as guidance/trajectory.py)
function round2(v) { return Math.round(v * 100) / 100; }

function linear(frames, xy, t) {               // np.interp: linear between keyframes, held outside
  const K = frames.length;
  if (t <= frames[0]) return xy[0].slice();
  if (t >= frames[K - 1]) return xy[K - 1].slice();
  let j = 0;
  while (frames[j + 1] <= t) j++;
  return [0, 1].map(a => (xy[j + 1][a] - xy[j][a]) / (frames[j + 1] - frames[j]) * (t - frames[j]) + xy[j][a]);
}

function catmullRom(frames, xy, t) {           // trajectory.catmull_rom: Hermite with Catmull-Rom tangents
  const K = frames.length;
  if (K < 2) return xy[0].slice();
  const tangent = (k, a) => {
    const lo = Math.max(k - 1, 0), hi = Math.min(k + 1, K - 1);
    return (xy[hi][a] - xy[lo][a]) / (frames[hi] - frames[lo]);
  };
  let k = 0;
  while (k < K - 2 && frames[k + 1] <= t) k++;
  const h = frames[k + 1] - frames[k], s = Math.min(Math.max((t - frames[k]) / h, 0), 1);
  return [0, 1].map(a => (2 * s ** 3 - 3 * s ** 2 + 1) * xy[k][a] + (s ** 3 - 2 * s ** 2 + s) * h * tangent(k, a)
                         + (3 * s ** 2 - 2 * s ** 3) * xy[k + 1][a] + (s ** 3 - s ** 2) * h * tangent(k + 1, a));
}

function centres(b) {                          // (F, 2): the centre of box b in every frame
  const known = new Map([[0, [(b.box[0] + b.box[2]) / 2, (b.box[1] + b.box[3]) / 2]]]);
  for (const [key, xy] of Object.entries(b.keys)) known.set(Number(key), xy);
  const frames = [...known.keys()].sort((p, q) => p - q), xy = frames.map(f => known.get(f));
  const at = b.interpolation === "catmull-rom" ? catmullRom : linear;
  return Array.from({length: state.config.frames}, (_, t) => at(frames, xy, t));
}

function boxAt(b, n) {                         // the box in frame n: the first-frame box moved by c_n - c_0
  const c = centres(b), dx = c[n][0] - c[0][0], dy = c[n][1] - c[0][1];
  return [b.box[0] + dx, b.box[1] + dy, b.box[2] + dx, b.box[3] + dy];
}

// ------------------------------------------------------------------ the project's JSON
function projectDoc() {
  const doc = {};
  if (state.comment !== undefined) doc.comment = state.comment;
  doc.image_size = state.imageSize.slice();
  if (state.config.json_fields.includes("num_frames")) doc.num_frames = state.config.frames;
  doc.boxes = state.boxes.map(b => {
    const entry = {box: b.box.slice(), keyframes: {}};
    if (!b.pinned) {
      for (const f of Object.keys(b.keys).map(Number).sort((p, q) => p - q)) entry.keyframes[String(f)] = b.keys[f].slice();
    }
    if (b.interpolation !== "linear") entry.interpolation = b.interpolation;
    if (b.group) entry.group = b.group;
    if (b.comment !== undefined) entry.comment = b.comment;
    return entry;
  });
  return doc;
}

function docFrames(doc) {                      // the frame count a document's paths and keys were made for
  if (Number.isInteger(doc.num_frames)) return doc.num_frames;
  const withPath = doc.boxes.find(e => Array.isArray(e.path));
  return withPath ? withPath.path.length : state.config.frames;
}

function importDoc(doc, checked) {             // a document the server's check accepted, with its centres
  const size = doc.image_size || state.imageSize;
  const sx = state.imageSize[0] / size[0], sy = state.imageSize[1] / size[1];
  const at = p => (sx === 1 && sy === 1) ? [p[0], p[1]] : [p[0] * sx, p[1] * sy];
  const resampled = docFrames(doc) !== state.config.frames;   // then the loader's centres, one key per frame
  state.comment = doc.comment;
  state.boxes = doc.boxes.map((e, b) => {
    const keys = {};
    if (resampled) checked.centres[b].forEach((p, n) => { keys[n] = at(p); });
    else if (e.path) e.path.forEach((p, n) => { keys[n] = at(p); });
    else for (const [k, p] of Object.entries(e.keyframes)) keys[Number(k)] = at(p);
    const [x0, y0] = at(e.box.slice(0, 2)), [x1, y1] = at(e.box.slice(2));
    return {box: [x0, y0, x1, y1], keys, interpolation: resampled ? "linear" : e.interpolation || "linear",
            group: e.group || 0, pinned: !e.path && Object.keys(e.keyframes).length === 0, comment: e.comment};
  });
  state.selected = state.boxes.length ? 0 : -1;
  changed();
}

async function checkAndImport(doc, what) {
  clearErrors();
  const r = await api("/api/check", {method: "POST", body: JSON.stringify({trajectory: doc})});
  if (!r.ok) return showError("trajectory", `${what}: ${r.body.error}`);
  importDoc(doc, r.body);
  const frames = docFrames(doc);
  note(`${what}: ${doc.boxes.length} boxes` + (frames !== state.config.frames
    ? `; its ${frames} frames resampled to the model's ${state.config.frames} (linear in normalised time, as run.py does)` : ""));
}

function save() {
  const text = JSON.stringify(projectDoc(), null, 1) + "\n";
  const a = document.createElement("a");
  a.href = URL.createObjectURL(new Blob([text], {type: "application/json"}));
  a.download = "trajectory.json";
  document.body.appendChild(a);
  a.click();
  a.remove();
  note(`saved trajectory.json: ${state.boxes.length} boxes; run.py --trajectory trajectory.json reads the same`);
}

// ------------------------------------------------------------------ traj.npy (the reference's layout)
function float32Short(v) {                     // the shortest decimal that is the same float32
  for (let p = 1; p < 10; p++) {
    const s = Number(v.toPrecision(p));
    if (Math.fround(s) === v) return s;
  }
  return v;
}

function parseNpy(buffer) {                    // -> {B, N, data: Float64Array}; shape (B, N, 2)
  const bytes = new Uint8Array(buffer), view = new DataView(buffer);
  const magic = String.fromCharCode(...bytes.slice(1, 6));
  if (bytes[0] !== 0x93 || magic !== "NUMPY") throw new Error("not a .npy file (no \\x93NUMPY magic)");
  const major = bytes[6], headerLen = major === 1 ? view.getUint16(8, true) : view.getUint32(8, true);
  const start = major === 1 ? 10 : 12;
  const header = new TextDecoder().decode(bytes.slice(start, start + headerLen));
  const descr = (header.match(/'descr':\s*'([^']*)'/) || [])[1];
  const fortran = (header.match(/'fortran_order':\s*(True|False)/) || [])[1];
  const shape = ((header.match(/'shape':\s*\(([^)]*)\)/) || [])[1] || "").split(",").filter(s => s.trim()).map(Number);
  if (descr !== "<f4" && descr !== "<f8") throw new Error(`dtype ${descr}: expected float32 or float64 little-endian (<f4, <f8)`);
  if (fortran !== "False") throw new Error("fortran_order: expected a C-ordered array");
  if (shape.length !== 3 || shape[0] < 1 || shape[1] < 3 || shape[2] !== 2) {
    throw new Error(`shape (${shape.join(", ")}): expected (B, 2 + F, 2) with B >= 1, F >= 1`);
  }
  const size = descr === "<f4" ? 4 : 8, offset = start + headerLen, count = shape[0] * shape[1] * 2;
  if (buffer.byteLength < offset + count * size) throw new Error("file shorter than its shape says");
  const data = new Float64Array(count);
  for (let i = 0; i < count; i++) {
    data[i] = size === 4 ? float32Short(view.getFloat32(offset + 4 * i, true)) : view.getFloat64(offset + 8 * i, true);
  }
  if (!data.every(Number.isFinite)) throw new Error("values: expected finite numbers (no NaN or inf)");
  return {B: shape[0], N: shape[1], data};
}

function npyDoc(npy) {                         // resampled to the model's frames, linear in normalised time
  const F = state.config.frames, Fs = npy.N - 2, at = (b, r) => [npy.data[(b * npy.N + r) * 2], npy.data[(b * npy.N + r) * 2 + 1]];
  const boxes = [];
  for (let b = 0; b < npy.B; b++) {
    const path = [];
    for (let n = 0; n < F; n++) {
      const u = F > 1 ? n / (F - 1) * (Fs - 1) : 0, i = Math.min(Math.floor(u), Fs - 1), w = u - i;
      const p = at(b, 2 + i), q = at(b, 2 + Math.min(i + 1, Fs - 1));
      path.push(w === 0 ? p : [p[0] + (q[0] - p[0]) * w, p[1] + (q[1] - p[1]) * w]);
    }
    boxes.push({box: [...at(b, 0), ...at(b, 1)], path});
  }
  return {doc: {image_size: state.imageSize.slice(), boxes}, resampled: Fs !== F, frames: Fs};
}

// ------------------------------------------------------------------ drawing
function scale() { return [canvas.width / state.imageSize[0], canvas.height / state.imageSize[1]]; }
function toCanvas(p) { const [kx, ky] = scale(); return [p[0] * kx, p[1] * ky]; }
function colour(i, alpha = 1) { const [r, g, b] = state.config.colours[i % state.config.colours.length]; return `rgba(${r},${g},${b},${alpha})`; }

function strokeBox(box, style, width, dash) {
  const [x0, y0] = toCanvas(box.slice(0, 2)), [x1, y1] = toCanvas(box.slice(2));
  ctx.setLineDash(dash); ctx.strokeStyle = style; ctx.lineWidth = width;
  ctx.strokeRect(x0, y0, x1 - x0, y1 - y0);
  ctx.setLineDash([]);
}

function draw() {
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  if (state.image) ctx.drawImage(state.image, 0, 0, canvas.width, canvas.height);
  state.boxes.forEach((b, i) => {
    const c = centres(b), n = state.frame, box = boxAt(b, n), selected = i === state.selected;
    ctx.strokeStyle = colour(i, 0.9); ctx.lineWidth = 1.5; ctx.beginPath();
    c.forEach((p, t) => { const [x, y] = toCanvas(p); t ? ctx.lineTo(x, y) : ctx.moveTo(x, y); });
    ctx.stroke();
    for (const f of [0, ...Object.keys(b.keys).map(Number)]) {
      const [x, y] = toCanvas(c[f]);
      ctx.fillStyle = colour(i); ctx.beginPath(); ctx.arc(x, y, f === n ? 5 : 3.5, 0, 2 * Math.PI); ctx.fill();
    }
    if (n > 0) strokeBox(b.box, colour(i, 0.7), 1, [4, 3]);
    strokeBox(box, "rgba(0,0,0,0.6)", selected ? 5 : 4, []);
    strokeBox(box, colour(i), selected ? 3 : 2, []);
    const [x0, y0] = toCanvas(box.slice(0, 2)), label = String(i) + (b.pinned ? " pin" : b.group ? ` g${b.group}` : "");
    ctx.font = "bold 13px sans-serif"; const w = ctx.measureText(label).width + 6;
    ctx.fillStyle = colour(i); ctx.fillRect(x0, y0 - 16, w, 16);
    ctx.fillStyle = "#000"; ctx.fillText(label, x0 + 3, y0 - 4);
    if (selected && n === 0) {
      for (const [x, y] of corners(box)) { ctx.fillStyle = "#fff"; ctx.fillRect(x - 3, y - 3, 6, 6); ctx.strokeRect(x - 3, y - 3, 6, 6); }
    }
  });
  if (state.drag && state.drag.kind === "draw" && state.drag.box) strokeBox(state.drag.box, "#fff", 2, [5, 3]);
}

function corners(box) {                        // display px of x0y0, x1y0, x0y1, x1y1
  const [x0, y0] = toCanvas(box.slice(0, 2)), [x1, y1] = toCanvas(box.slice(2));
  return [[x0, y0], [x1, y0], [x0, y1], [x1, y1]];
}

// ------------------------------------------------------------------ the box list
function renderList() {
  const list = $("boxes");
  list.replaceChildren();
  state.boxes.forEach((b, i) => {
    const li = document.createElement("li");
    li.dataset.box = i;
    if (i === state.selected) li.className = "selected";
    const keys = Object.keys(b.keys).map(Number).sort((p, q) => p - q)
      .map(f => `<span class="key">frame ${f}: (${b.keys[f][0].toFixed(1)}, ${b.keys[f][1].toFixed(1)})<button data-key="${f}" title="remove this keyframe">x</button></span>`);
    const groups = [0, 1, 2, 3, 4].map(g => `<option value="${g}"${g === b.group ? " selected" : ""}>${g ? g : "none"}</option>`);
    const interps = state.config.interpolations.map(m => `<option${m === b.interpolation ? " selected" : ""}>${m}</option>`);
    li.innerHTML = `<div class="row"><span class="swatch">${i}</span>` +
      `<span class="coords">box (${b.box.map(v => v.toFixed(1)).join(", ")})</span>` +
      `<button class="delete" type="button">delete</button></div><div class="row">` +
      `<label><input type="checkbox" class="pin"${b.pinned ? " checked" : ""}> pin</label>` +
      `<select class="interpolation" title="path between keyframes">${interps.join("")}</select>` +
      `<label>camera group <select class="group" title="the boxes of a group move together">${groups.join("")}</select></label></div>` +
      `<div class="keys">${b.pinned ? "pinned: no motion" : keys.length ? "keyframes: " + keys.join("") : "no keyframes yet: pick a frame and drag the box"}</div>` +
      `<div class="error"></div>`;
    paintSwatches(li);
    li.addEventListener("click", () => { if (state.selected !== i) { state.selected = i; changed(); } });
    li.querySelector(".pin").addEventListener("change", e => { b.pinned = e.target.checked; if (b.pinned) b.keys = {}; changed(); });
    li.querySelector(".interpolation").addEventListener("change", e => { b.interpolation = e.target.value; changed(); });
    li.querySelector(".group").addEventListener("change", e => { b.group = Number(e.target.value); changed(); });
    li.querySelector(".delete").addEventListener("click", e => { e.stopPropagation(); removeBox(i); });
    li.querySelectorAll("button[data-key]").forEach(btn => btn.addEventListener("click", e => {
      e.stopPropagation(); delete b.keys[Number(btn.dataset.key)]; changed();
    }));
    list.appendChild(li);
  });
}

function paintSwatches(element) {              // colours set through the DOM: the page's CSP allows no inline style
  element.querySelectorAll(".swatch").forEach(el => { el.style.background = colour(Number(el.textContent)); });
}

function removeBox(i) {
  state.boxes.splice(i, 1);
  state.selected = Math.min(state.selected, state.boxes.length - 1);
  changed();
}

function changed() { renderList(); draw(); hint(); }

function hint() {
  $("hint").textContent = state.frame === 0
    ? "Frame 0: drag on the image to draw a box; drag a box to move it, a corner of the selected box to resize it."
    : `Frame ${state.frame}: drag a box to set its keyframe here (boxes of one camera group move together).`;
}

// ------------------------------------------------------------------ mouse
function canvasPoint(e) {                      // display px of a pointer event, from the image's top-left
  const r = canvas.getBoundingClientRect();
  return [e.clientX - r.left - canvas.clientLeft, e.clientY - r.top - canvas.clientTop];
}

function pointer(e) {                          // image px of a pointer event
  const [x, y] = canvasPoint(e), [kx, ky] = scale();
  return [x / kx, y / ky];
}

function hit(p) {                              // the box under image point p in the current frame (selected first)
  const order = state.boxes.map((_, i) => i).reverse();
  if (state.selected >= 0) order.unshift(state.selected);
  return order.find(i => { const b = boxAt(state.boxes[i], state.frame); return p[0] >= b[0] && p[0] <= b[2] && p[1] >= b[1] && p[1] <= b[3]; });
}

function clampBox(box) {                       // the first-frame box stays inside the image
  const [W, H] = state.imageSize, w = box[2] - box[0], h = box[3] - box[1];
  const x0 = Math.min(Math.max(box[0], 0), W - w), y0 = Math.min(Math.max(box[1], 0), H - h);
  return [round2(x0), round2(y0), round2(x0 + w), round2(y0 + h)];
}

canvas.addEventListener("pointerdown", e => {
  const p = pointer(e), n = state.frame;
  canvas.setPointerCapture(e.pointerId);
  if (n === 0 && state.selected >= 0) {        // a corner of the selected box: resize
    const [cx, cy] = canvasPoint(e);
    const corner = corners(state.boxes[state.selected].box).findIndex(([x, y]) => Math.hypot(x - cx, y - cy) <= HANDLE);
    if (corner >= 0) { state.drag = {kind: "resize", i: state.selected, corner, start: state.boxes[state.selected].box.slice()}; return; }
  }
  const i = hit(p);
  if (i === undefined) {
    state.drag = n === 0 ? {kind: "draw", start: p, box: null} : null;
    if (n > 0) $("hint").textContent = "Go to frame 0 to draw a new box.";
    return;
  }
  state.selected = i;
  const b = state.boxes[i];
  if (n === 0) {
    state.drag = {kind: "move", i, start: p, box: b.box.slice(), key0: b.keys[0] && b.keys[0].slice()};
  } else if (b.pinned) {
    state.drag = null;
    $("hint").textContent = `Box ${i} is pinned: untick "pin" to give it keyframes.`;
  } else {                                     // a keyframe at frame n, for the box or its whole camera group
    const members = state.boxes.map((m, j) => j).filter(j => j === i || (b.group && state.boxes[j].group === b.group && !state.boxes[j].pinned));
    state.drag = {kind: "key", start: p, n, members: members.map(j => ({j, centre: centres(state.boxes[j])[n]}))};
  }
  changed();
});

canvas.addEventListener("pointermove", e => {
  const d = state.drag;
  if (!d) return;
  const p = pointer(e), [W, H] = state.imageSize;
  if (d.kind === "draw") {
    const x0 = Math.max(0, Math.min(d.start[0], p[0])), x1 = Math.min(W, Math.max(d.start[0], p[0]));
    const y0 = Math.max(0, Math.min(d.start[1], p[1])), y1 = Math.min(H, Math.max(d.start[1], p[1]));
    d.box = [round2(x0), round2(y0), round2(x1), round2(y1)];
  } else if (d.kind === "move") {
    const b = state.boxes[d.i], moved = clampBox([d.box[0] + p[0] - d.start[0], d.box[1] + p[1] - d.start[1], d.box[2] + p[0] - d.start[0], d.box[3] + p[1] - d.start[1]]);
    b.box = moved;
    if (d.key0) b.keys[0] = [round2(d.key0[0] + moved[0] - d.box[0]), round2(d.key0[1] + moved[1] - d.box[1])];
  } else if (d.kind === "resize") {
    const box = d.start.slice(), x = round2(Math.min(Math.max(p[0], 0), W)), y = round2(Math.min(Math.max(p[1], 0), H));
    box[d.corner % 2 ? 2 : 0] = x;
    box[d.corner < 2 ? 1 : 3] = y;
    state.boxes[d.i].box = [Math.min(box[0], box[2]), Math.min(box[1], box[3]), Math.max(box[0], box[2]), Math.max(box[1], box[3])];
  } else if (d.kind === "key") {
    for (const m of d.members) {
      state.boxes[m.j].keys[d.n] = [round2(m.centre[0] + p[0] - d.start[0]), round2(m.centre[1] + p[1] - d.start[1])];
    }
  }
  draw();
});

canvas.addEventListener("pointerup", () => {
  const d = state.drag, [kx, ky] = scale();
  state.drag = null;
  if (d && d.kind === "draw" && d.box && (d.box[2] - d.box[0]) * kx >= MIN_BOX && (d.box[3] - d.box[1]) * ky >= MIN_BOX) {
    state.boxes.push({box: d.box, keys: {}, interpolation: "linear", group: 0, pinned: false, comment: undefined});
    state.selected = state.boxes.length - 1;
  } else if (d && d.kind === "resize") {
    const b = state.boxes[d.i];
    if ((b.box[2] - b.box[0]) * kx < MIN_BOX || (b.box[3] - b.box[1]) * ky < MIN_BOX) b.box = d.start;
  }
  changed();
});

// ------------------------------------------------------------------ frames and playing
function setFrame(n) {
  state.frame = n;
  $("frame").value = n;
  $("frame-label").textContent = `${n} / ${state.config.frames - 1}`;
  draw(); hint();
}

function play() {
  if (state.player) { clearInterval(state.player); state.player = null; $("play").textContent = "Play"; return; }
  $("play").textContent = "Stop";
  state.player = setInterval(() => setFrame((state.frame + 1) % state.config.frames), 1000 / state.config.fps);
}

// ------------------------------------------------------------------ messages
function clearErrors() {
  document.querySelectorAll(".error").forEach(el => { el.textContent = ""; });
}

function showError(field, message) {
  const target = $(`error-${field}`) || $("error-generate");
  target.textContent = message;
  const box = field === "trajectory" && /box (\d+)/.exec(message);
  if (box) {
    const li = document.querySelector(`#boxes li[data-box="${box[1]}"] .error`);
    if (li) li.textContent = message;
  }
}

function note(text) { $("note-files").textContent = text; }

// ------------------------------------------------------------------ files
function readFile(input, as) {
  const file = input.files[0];
  input.value = "";
  if (!file) return null;
  if (file.size > state.config.max_upload) {
    throw new Error(`${file.name}: ${file.size} bytes, expected at most ${state.config.max_upload} bytes`);
  }
  return {file, data: as === "text" ? file.text() : file.arrayBuffer()};
}

$("json-file").addEventListener("change", async e => {
  clearErrors();
  try {
    const read = readFile(e.target, "text");
    if (!read) return;
    let doc;
    try { doc = JSON.parse(await read.data); } catch (err) { return showError("trajectory", `${read.file.name}: not JSON (${err.message})`); }
    await checkAndImport(doc, read.file.name);
  } catch (err) { showError("trajectory", err.message); }
});

$("npy-file").addEventListener("change", async e => {
  clearErrors();
  try {
    const read = readFile(e.target, "buffer");
    if (!read) return;
    let npy;
    try { npy = parseNpy(await read.data); } catch (err) { return showError("trajectory", `${read.file.name}: ${err.message}`); }
    const {doc, resampled, frames} = npyDoc(npy);
    await checkAndImport(doc, read.file.name);
    if (resampled) note(`${read.file.name}: ${frames} frames resampled to the model's ${state.config.frames} (linear in normalised time, as run.py does)`);
  } catch (err) { showError("trajectory", err.message); }
});

$("image-file").addEventListener("change", async e => {
  clearErrors();
  try {
    const read = readFile(e.target, "buffer");
    if (!read) return;
    const r = await api("/api/image", {method: "POST", body: await read.data, headers: {"X-Filename": encodeURIComponent(read.file.name)}});
    if (!r.ok) return showError(r.body.field || "image", r.body.error);
    const [W0, H0] = state.imageSize, [W, H] = r.body.size;
    state.boxes.forEach(b => {                 // keep the boxes where they were, relative to the image
      const sx = W / W0, sy = H / H0;
      b.box = clampBox([b.box[0] * sx, b.box[1] * sy, b.box[2] * sx, b.box[3] * sy]);
      for (const f of Object.keys(b.keys)) b.keys[f] = [round2(b.keys[f][0] * sx), round2(b.keys[f][1] * sy)];
    });
    loadImage(r.body);
  } catch (err) { showError("image", err.message); }
});

function loadImage(info) {
  state.imageSize = info.size;
  $("image-name").textContent = `${info.name} (${info.size[0]}x${info.size[1]})`;
  const img = new Image();
  img.onload = () => { state.image = img; changed(); };
  img.src = withToken(info.url);
}

// ------------------------------------------------------------------ generate
async function generate() {
  clearErrors();
  const seed = Number($("seed").value);
  if ($("seed").value === "" || !Number.isInteger(seed) || seed < 0) return showError("seed", `seed ${$("seed").value}: expected an integer >= 0`);
  const doc = state.boxes.length ? projectDoc() : null;
  const r = await api("/api/generate", {method: "POST", body: JSON.stringify({trajectory: doc, seed})});
  if (!r.ok) return showError(r.body.field || "generate", r.body.error);
  $("progress-text").textContent = `run ${r.body.run}: starting`;
  poll();
}

async function poll() {
  if (state.polling) return;
  state.polling = true;
  $("generate").disabled = true;
  try {
    for (;;) {
      const r = await api("/api/job");
      const job = r.body;
      showProgress(job);
      if (job.state === "done") { showResult(job.result); break; }
      if (job.state === "failed") { showError(job.field || "generate", `run ${job.run} failed: ${job.error}`); break; }
      if (job.state !== "running") break;
      await new Promise(resolve => setTimeout(resolve, 300));
    }
  } finally {
    state.polling = false;
    $("generate").disabled = false;
  }
}

function showProgress(job) {
  const bar = $("progress");
  let text = `run ${job.run}: ${job.state}`;
  if (job.state === "running") {
    if (job.step !== null && job.step !== undefined) { bar.max = job.steps; bar.value = job.step + 1; text += `, denoising step ${job.step + 1} / ${job.steps}`; }
    else { bar.removeAttribute("value"); text += ` (${job.stage})`; }
    if (job.losses && job.losses.length) text += `, loss ${job.losses[0].toPrecision(4)} -> ${job.losses[job.losses.length - 1].toPrecision(4)} (step ${job.loss_step})`;
  } else { bar.max = 1; bar.value = job.state === "done" ? 1 : 0; }
  $("progress-text").textContent = text;
}

function showResult(result) {
  $("result").hidden = false;
  $("result-run").textContent = `run ${result.run}` + (result.seconds ? ` (${result.seconds.toFixed(1)} s)` : "");
  $("video").src = withToken(result.video);
  $("overlay").parentElement.hidden = !result.overlay;
  if (result.overlay) $("overlay").src = withToken(result.overlay);
  for (const id of ["video", "overlay"]) $(id).play().catch(() => {});
  $("run-json").href = withToken(result.run_json);
  $("run-folder").textContent = result.folder;
  $("follow").replaceChildren(followTable(result.follow));
}

function followTable(report) {
  const div = document.createElement("div");
  if (!report) { div.textContent = "No follow report in run.json."; return div; }
  const rows = report.boxes.map((r, i) => {
    const v = x => (x === null || x === undefined ? "-" : x.toFixed(2));
    return `<tr><td><span class="swatch">${i}</span></td><td>${r.pinned ? "pinned" : "moves"}</td>` +
      `<td>${v(r.mean_px)}</td><td>${v(r.max_px)}</td><td>${v(r.mean_diagonal)}</td>` +
      `<td class="${r.verdict.replace(/ /g, "-")}">${r.verdict}</td></tr>`;
  });
  div.innerHTML = `<h3>Follow report: ${report.followed} of ${report.boxes.length} boxes followed their paths</h3>` +
    `<table id="follow-table"><tr><th>box</th><th>path</th><th>mean px</th><th>max px</th><th>mean / diagonal</th><th>verdict</th></tr>${rows.join("")}</table>` +
    `<p class="note">${report.rule}</p>`;
  paintSwatches(div);
  return div;
}

// ------------------------------------------------------------------ start
async function start() {
  const r = await api("/api/config");
  if (!r.ok) { $("model-info").textContent = r.body.error; return; }
  const c = state.config = r.body;
  $("model-info").textContent = `${c.model}: ${c.frames} frames at ${c.width}x${c.height}, ${c.fps} fps, ${c.steps} steps`;
  const k0 = Math.min(640 / c.width, 560 / c.height), k = k0 >= 1 ? Math.floor(k0) : k0;
  canvas.width = Math.round(c.width * k); canvas.height = Math.round(c.height * k);
  $("frame").max = c.frames - 1;
  $("seed").value = c.seed;
  setFrame(0);
  loadImage(c.image);
  if (c.trajectory) await checkAndImport(c.trajectory, "start trajectory");
  if (c.job.state === "running") poll();
}

$("frame").addEventListener("input", e => setFrame(Number(e.target.value)));
$("play").addEventListener("click", play);
$("save").addEventListener("click", save);
$("generate").addEventListener("click", generate);
document.addEventListener("keydown", e => {
  if (e.target.closest("input, select, textarea")) return;
  if ((e.key === "Delete" || e.key === "Backspace") && state.selected >= 0) removeBox(state.selected);
  else if (e.key === "ArrowRight") setFrame(Math.min(state.frame + 1, state.config.frames - 1));
  else if (e.key === "ArrowLeft") setFrame(Math.max(state.frame - 1, 0));
});
window.editor = {state, centres, projectDoc};   // read by the browser tests and handy in the console
start();
