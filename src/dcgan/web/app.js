// The dcgan explorer page. Plain JavaScript: every picture comes from the server's JSON API as a
// PNG data URL, and every latent point is a reference the server understands:
// {seed, n, index} for a sample of a grid, or {z: [...]} for an inverted image or a slider position.
// A class-conditional model draws every z in a class: the selector's class goes with each request that
// draws (the server's "class"), and the references the server returns carry the class they were drawn in.
"use strict";

const $ = (id) => document.getElementById(id);
const state = {
  info: null,
  walkStart: null,          // {ref, cell} of the first click of a walk
  groups: { a: [], b: [], c: [] },  // [{ref, src}] per arithmetic group
  slideBase: null,          // {ref, src, label}
  slideLatent: null,        // {z} of the slider image shown
  arithLatent: null,
  lastWalk: null,           // {a, b, label, endClass} of the walk shown, redrawn when the class changes
  busy: 0,
};

// ------------------------------------------------------------------ requests and errors
function showError(message) {
  const box = $("error");
  box.textContent = message;
  box.hidden = false;
}

function clearError() {
  $("error").hidden = true;
  $("error").textContent = "";
}

function setBusy(delta, what) {
  state.busy += delta;
  $("status").textContent = state.busy > 0 ? `working: ${what}…` : "";
  document.body.setAttribute("aria-busy", state.busy > 0 ? "true" : "false");
}

// POST (or GET) to the API; resolves to the JSON answer, or shows the server's one-line error and resolves to null.
async function api(path, body, what, options = {}) {
  setBusy(+1, what);
  try {
    const init = body === undefined ? {} : {
      method: "POST",
      headers: { "Content-Type": options.contentType || "application/json" },
      body: options.raw ? body : JSON.stringify(body),
    };
    const response = await fetch(path, init);
    let answer = null;
    try { answer = await response.json(); } catch (e) { answer = null; }
    if (!response.ok) {
      showError(`${what}: ${(answer && answer.error) || `the server answered ${response.status}`}`);
      return null;
    }
    clearError();
    return answer;
  } catch (e) {
    showError(`${what}: the server cannot be reached (${e.message})`);
    return null;
  } finally {
    setBusy(-1, what);
  }
}

// Numbers are sent as typed: the server, not the page, decides what is valid, so its message is shown.
function numberOf(id) {
  const text = $(id).value.trim();
  return text === "" ? null : Number(text);
}

function showDownload(id, href, name) {
  const link = $(id);
  link.href = href;
  if (name) link.download = name;
  link.hidden = false;
}

function showImage(id, src) {
  const img = $(id);
  img.src = src;
  img.hidden = false;
}

// ------------------------------------------------------------------ classes
function conditional() {
  return Boolean(state.info && state.info.conditional);
}

// The selector's class as request fields: {class: k} for a conditional model, nothing otherwise.
function classField() {
  return conditional() ? { class: Number($("class").value) } : {};
}

function className(k) {
  return state.info.classes[k];
}

function setUpClasses(info) {
  if (!info.conditional) return;
  // "3: sneaker", or just "7" where the names are the indices (MNIST's digits)
  const options = () => info.classes.map((name, k) => new Option(name === String(k) ? name : `${k}: ${name}`, String(k)));
  $("class").replaceChildren(...options());
  $("invert-class").append(...options());
  for (const id of ["class-field", "mode-classes", "invert-class-field", "classes"]) $(id).hidden = false;
  $("class").addEventListener("change", onClassChange);
}

// Everything drawn in the old class is drawn again in the new one, each z keeping its place.
async function onClassChange() {
  await showSheet();
  if (state.lastWalk) {
    const w = state.lastWalk;
    await runWalk(w.a, w.b, w.label, w.endClass);
  }
  await loadSliders();
  if (state.slideBase) await runSlide();
}

// ------------------------------------------------------------------ the sample grid
function makeCell(src, ref, label) {
  const cell = document.createElement("div");
  cell.className = "cell";
  cell.title = label;
  const img = document.createElement("img");
  img.src = src;
  img.alt = `sample ${label}`;
  const tag = document.createElement("span");
  tag.textContent = label;
  cell.append(img, tag);
  cell.addEventListener("click", () => onSampleClick(ref, src, label, cell));
  return cell;
}

async function showSheet() {
  const seed = numberOf("seed");
  const n = numberOf("count");
  const answer = await api("/api/sheet", { seed, n, ...classField() }, "samples");
  if (!answer) return;
  const grid = $("grid");
  grid.replaceChildren(...answer.images.map((src, i) => makeCell(src, answer.latents[i], String(i))));
  grid.dataset.seed = String(answer.seed);
  grid.dataset.class = conditional() ? String(answer.class) : "";
  grid.style.setProperty("--cols", String(Math.ceil(Math.sqrt(answer.n))));
  showDownload("download-sheet", answer.picture, `samples-seed${answer.seed}-n${answer.n}.png`);
  state.walkStart = null;
  $("walk-ends").textContent = "";
}

function newSeed() {
  const values = new Uint32Array(1);
  crypto.getRandomValues(values);
  $("seed").value = String(values[0]);
  showSheet();
}

function pin(src, ref, label) {
  $("pinned-row").hidden = false;
  $("pinned").append(makeCell(src, ref, label));
}

function clickMode() {
  return document.querySelector('input[name="mode"]:checked').value;
}

function onSampleClick(ref, src, label, cell) {
  const mode = clickMode();
  if (mode === "walk") {
    if (!state.walkStart) {
      state.walkStart = { ref, cell, label };
      cell.classList.add("start");
      $("walk-ends").textContent = `from ${label} to … (click another sample)`;
    } else {
      const start = state.walkStart;
      start.cell.classList.remove("start");
      state.walkStart = null;
      runWalk(start.ref, ref, `${start.label} → ${label}`);
    }
  } else if (mode === "slide") {
    state.slideBase = { ref, src, label };
    resetSliders();
  } else if (mode === "classes") {
    showClasses(ref, label);
  } else {
    state.groups[mode].push({ ref, src, label });
    cell.classList.add(`in-${mode}`);
    drawGroups();
  }
}

// ------------------------------------------------------------------ walks
// endClass (conditional models): the class input also moves from the selector's class to endClass.
async function runWalk(a, b, label, endClass = null) {
  const body = { a, b, steps: numberOf("walk-steps"), method: $("walk-method").value, ...classField() };
  if (endClass !== null) body.end_class = endClass;
  const answer = await api("/api/walk", body, "walk");
  if (!answer) return;
  state.lastWalk = { a, b, label, endClass };
  $("walk-ends").textContent = endClass === null ? label : `${label}: class ${className(answer.class)} → ${className(endClass)}`;
  $("walk-images").replaceChildren(...answer.images.map((src, i) => {
    const img = document.createElement("img");
    img.src = src;
    img.alt = `walk step ${i}`;
    return img;
  }));
  showImage("walk-gif", answer.gif);
  showDownload("download-walk", answer.picture);
  showDownload("download-walk-gif", answer.gif);
  $("walk").scrollIntoView({ behavior: "smooth", block: "nearest" });
}

// ------------------------------------------------------------------ one z in every class
async function showClasses(ref, label) {
  const answer = await api("/api/classes", { base: ref }, "every class");
  if (!answer) return;
  $("classes-images").replaceChildren(...answer.images.map((src, k) => {
    const cell = document.createElement("div");
    cell.className = "cell";
    cell.title = `${label} in class ${answer.classes[k]}: click to walk to it`;
    const img = document.createElement("img");
    img.src = src;
    img.alt = `sample ${label} in class ${answer.classes[k]}`;
    const tag = document.createElement("span");
    tag.textContent = answer.classes[k];
    cell.append(img, tag);
    cell.addEventListener("click", () => runWalk(ref, ref, label, k));
    return cell;
  }));
  showDownload("download-classes", answer.picture);
  $("classes").scrollIntoView({ behavior: "smooth", block: "nearest" });
}

// ------------------------------------------------------------------ arithmetic
function drawGroups() {
  for (const name of ["a", "b", "c"]) {
    const box = $(`group-${name}`);
    box.replaceChildren(...state.groups[name].map((item, i) => {
      const cell = document.createElement("div");
      cell.className = "cell";
      cell.title = `${item.label} (click to drop)`;
      const img = document.createElement("img");
      img.src = item.src;
      img.alt = `group ${name.toUpperCase()}: ${item.label}`;
      cell.append(img);
      cell.addEventListener("click", () => { state.groups[name].splice(i, 1); drawGroups(); });
      return cell;
    }));
  }
}

async function runArithmetic() {
  const body = {
    a: state.groups.a.map((g) => g.ref),
    b: state.groups.b.map((g) => g.ref),
    c: state.groups.c.map((g) => g.ref),
    noise: numberOf("noise"),
    noise_seed: numberOf("noise-seed"),
    ...classField(),
  };
  const answer = await api("/api/arithmetic", body, "arithmetic");
  if (!answer) return;
  showImage("arith-result", answer.result);
  showImage("arith-grid", answer.grid);
  showDownload("download-arithmetic", answer.picture);
  state.arithLatent = { ref: answer.latent, src: answer.result };
  $("pin-arithmetic").hidden = false;
}

function clearGroups() {
  state.groups = { a: [], b: [], c: [] };
  document.querySelectorAll(".cell.in-a, .cell.in-b, .cell.in-c").forEach((c) => c.classList.remove("in-a", "in-b", "in-c"));
  drawGroups();
}

// ------------------------------------------------------------------ inversion
async function runInvert() {
  const file = $("invert-file").files[0];
  if (!file) { showError("invert: choose an image file first"); return; }
  const query = new URLSearchParams({ restarts: $("invert-restarts").value, steps: $("invert-steps").value });
  if (conditional() && $("invert-class").value !== "") query.set("class", $("invert-class").value);  // none: inferred
  const answer = await api(`/api/invert?${query}`, file, "inversion", { raw: true, contentType: file.type || "application/octet-stream" });
  if (!answer) return;
  showImage("invert-target", answer.target);
  showImage("invert-image", answer.image);
  const found = answer.inferred ? `, class ${answer.class_name} (inferred)` : "";
  $("invert-score").textContent = `reconstruction MSE ${answer.mse.toFixed(4)}, PSNR ${answer.psnr.toFixed(1)} dB${found}; added to “your images” above`;
  showDownload("download-invert", answer.picture, `inversion-${file.name.replace(/\.[^.]*$/, "")}.png`);
  pin(answer.image, answer.latent, `inv ${file.name}`.slice(0, 14));
}

// ------------------------------------------------------------------ principal directions
let slideTimer = null;
let slideInFlight = false;
let slidePending = false;

// A conditional model has directions per class: they are loaded again for a new class, the positions kept.
async function loadSliders() {
  const query = conditional() ? `?class=${$("class").value}` : "";
  const answer = await api(`/api/directions${query}`, undefined, "principal directions");
  if (!answer) return;
  const previous = amounts();
  $("slider-list").replaceChildren(...answer.explained.map((share, k) => {
    const label = document.createElement("label");
    const name = document.createElement("span");
    name.textContent = `direction ${k + 1} (${(100 * share).toFixed(1)}%)`;
    const input = document.createElement("input");
    Object.assign(input, { type: "range", min: "-3", max: "3", step: "0.1", value: String(previous[k] ?? 0) });
    input.dataset.k = String(k);
    input.setAttribute("aria-label", `direction ${k + 1}`);
    const value = document.createElement("output");
    value.textContent = Number(input.value).toFixed(1);
    input.addEventListener("input", () => { value.textContent = Number(input.value).toFixed(1); scheduleSlide(); });
    label.append(name, input, value);
    return label;
  }));
}

function amounts() {
  return [...document.querySelectorAll("#slider-list input")].map((i) => Number(i.value));
}

function scheduleSlide() {
  clearTimeout(slideTimer);
  slideTimer = setTimeout(runSlide, 60);
}

// One request at a time; moves made meanwhile are sent once it returns (the last position wins).
async function runSlide() {
  if (!state.slideBase) return;
  if (slideInFlight) { slidePending = true; return; }
  slideInFlight = true;
  try {
    const answer = await api("/api/slide", { base: state.slideBase.ref, amounts: amounts(), ...classField() }, "sliders");
    if (answer) {
      showImage("slide-image", answer.image);
      showDownload("download-slide", answer.image, `slider-${state.slideBase.label}.png`);
      state.slideLatent = { ref: answer.latent, src: answer.image };
      $("pin-slide").hidden = false;
    }
  } finally {
    slideInFlight = false;
    if (slidePending) { slidePending = false; runSlide(); }
  }
}

function resetSliders() {
  document.querySelectorAll("#slider-list input").forEach((i) => { i.value = "0"; i.dispatchEvent(new Event("input")); });
  if (state.slideBase) {
    $("slide-caption").textContent = `sample ${state.slideBase.label}`;
    runSlide();
  }
}

// ------------------------------------------------------------------ start
async function start() {
  $("sheet-form").addEventListener("submit", (e) => { e.preventDefault(); showSheet(); });
  $("new-seed").addEventListener("click", newSeed);
  $("run-arithmetic").addEventListener("click", runArithmetic);
  $("clear-groups").addEventListener("click", clearGroups);
  $("run-invert").addEventListener("click", runInvert);
  $("reset-sliders").addEventListener("click", resetSliders);
  $("pin-arithmetic").addEventListener("click", () => pin(state.arithLatent.src, state.arithLatent.ref, "A−B+C"));
  $("pin-slide").addEventListener("click", () => pin(state.slideLatent.src, state.slideLatent.ref, "slid"));

  const info = await api("/api/info", undefined, "model");
  if (!info) return;
  state.info = info;
  $("model-info").textContent = `${info.checkpoint} · step ${info.step} · ${info.image_size}×${info.image_size}×${info.channels}`
    + ` · z ${info.z_dim} (${info.prior})${info.data ? ` · trained on ${info.data}` : ""}`
    + (info.conditional ? ` · ${info.classes.length} classes (${info.conditioning})` : "");
  setUpClasses(info);
  $("count").max = String(info.limits.max_samples);
  $("walk-steps").max = String(info.limits.max_walk_steps);
  await showSheet();
  await loadSliders();
  document.body.dataset.ready = "true";
}

start();
