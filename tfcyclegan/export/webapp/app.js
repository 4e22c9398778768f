// The page of `tfcyclegan export --format web`: a photo in, its translation out, in the
// browser with LiteRT.js. A plain ES module, no build step.
//
// model.json (written by tfcyclegan.export.web) names one fixed-size .tflite file per
// direction. LiteRT.js runs only fixed input shapes (a dynamic-size file fails with
// "TensorBuffer ranked tensor type Float32[1, 64, 64, 3] does not match expected ...
// [-1, -1, -1, 3]"), so a photo is translated in tiles of the file's size whose
// seams are blended, as `tfcyclegan translate` tiles large photos
// (tfcyclegan/translate.py, translate_tiled: the same tile starts and ramps).
//
// Test hooks: document.body.dataset.state is loading | ready | running | done | error;
// ?accelerator=wasm|webgpu chooses the runtime; ?max=N the longest side (0: keep).

import { isWebGPUSupported, loadAndCompile, loadLiteRt, Tensor } from "./litert/index.js";

const params = new URLSearchParams(location.search);
const $ = (id) => document.getElementById(id);

function setState(state, message) {
  document.body.dataset.state = state;
  $("status").textContent = message;
}

// --- Geometry: the twins of tfcyclegan/translate.py and tfcyclegan/imaging.py ---

// Starts of tiles of `tile` pixels covering `length`, overlapping by >= `overlap`.
export function tileStarts(length, tile, overlap) {
  if (length <= tile) return [0];
  const starts = [];
  for (let s = 0; s < length - tile; s += tile - overlap) starts.push(s);
  starts.push(length - tile);
  return starts;
}

// 1-D blending weights of one tile: linear ramps where it overlaps a neighbour.
export function ramp(length, start, tile, total, overlap) {
  const weights = new Float32Array(length).fill(1);
  if (overlap === 0) return weights;
  for (let i = 0; i < overlap; i++) {
    const r = (i + 0.5) / overlap;
    if (start > 0) weights[i] = Math.min(weights[i], r);
    if (start + tile < total) weights[length - 1 - i] = Math.min(weights[length - 1 - i], r);
  }
  return weights;
}

// Index of pixel `i` of a row of `size` pixels reflected forever (d c b | a b c d | c b a).
function mirror(i, size) {
  const period = Math.max(2 * size - 2, 1);
  const position = i % period;
  return position < size ? position : period - position;
}

// The RGB pixels (Uint8Array, HxWx3) of a tile at (top, left), h x w of the image,
// reflect-padded at the bottom and right to the model's fixed size.
function tilePixels(rgb, width, top, left, h, w, size) {
  const [height_, width_] = size;
  const out = new Uint8Array(height_ * width_ * 3);
  for (let y = 0; y < height_; y++) {
    const row = (top + mirror(y, h)) * width;
    for (let x = 0; x < width_; x++) {
      const src = (row + left + mirror(x, w)) * 3;
      const dst = (y * width_ + x) * 3;
      out[dst] = rgb[src];
      out[dst + 1] = rgb[src + 1];
      out[dst + 2] = rgb[src + 2];
    }
  }
  return out;
}

// --- The model ---

let current = null; // {entry, model, accelerator}

async function compile(entry) {
  const url = entry.file;
  const wanted = params.get("accelerator");
  const order = wanted ? [wanted] : isWebGPUSupported() ? ["webgpu", "wasm"] : ["wasm"];
  let lastError = null;
  for (const accelerator of order) {
    try {
      const model = await loadAndCompile(url, { accelerator });
      return { entry, model, accelerator };
    } catch (error) {
      // A browser that reports WebGPU without a usable adapter: the CPU path next.
      console.warn(`LiteRT.js could not compile ${url} for ${accelerator}:`, error);
      lastError = error;
    }
  }
  throw lastError;
}

async function runTile(pixels) {
  const [h, w] = current.entry.size;
  const input = new Tensor(pixels, [1, h, w, 3]);
  let outputs;
  try {
    outputs = await current.model.run([input]);
  } finally {
    input.delete();
  }
  let output = outputs[0];
  if (output.accelerator !== "wasm") {
    const moved = await output.moveTo("wasm");
    output = moved;
  }
  const values = output.toTypedArray().slice();
  output.delete();
  return values;
}

// Translates RGB pixels (HxWx3 Uint8Array) in tiles of the file's size; returns RGBA.
async function translate(rgb, height, width, onProgress) {
  const [tileH, tileW] = current.entry.size;
  const overlap = current.entry.tile_overlap;
  const tops = tileStarts(height, tileH, overlap);
  const lefts = tileStarts(width, tileW, overlap);
  const h = Math.min(tileH, height);
  const w = Math.min(tileW, width);
  const sum = new Float32Array(height * width * 3);
  const weight = new Float32Array(height * width);
  let done = 0;
  for (const top of tops) {
    for (const left of lefts) {
      const out = await runTile(tilePixels(rgb, width, top, left, h, w, current.entry.size));
      const rows = ramp(h, top, h, height, overlap);
      const cols = ramp(w, left, w, width, overlap);
      for (let y = 0; y < h; y++) {
        for (let x = 0; x < w; x++) {
          const k = rows[y] * cols[x];
          const dst = (top + y) * width + left + x;
          const src = (y * tileW + x) * 3;
          sum[dst * 3] += out[src] * k;
          sum[dst * 3 + 1] += out[src + 1] * k;
          sum[dst * 3 + 2] += out[src + 2] * k;
          weight[dst] += k;
        }
      }
      onProgress(++done, tops.length * lefts.length);
    }
  }
  const rgba = new Uint8ClampedArray(height * width * 4);
  for (let i = 0; i < height * width; i++) {
    for (let c = 0; c < 3; c++) rgba[i * 4 + c] = Math.round(sum[i * 3 + c] / weight[i]);
    rgba[i * 4 + 3] = 255;
  }
  return rgba;
}

// --- The page ---

let photo = null; // {bitmap, name}

function maxSide() {
  const value = params.get("max") ?? $("max-side").value;
  return Number(value);
}

function draw(canvas, source, width, height) {
  canvas.width = width;
  canvas.height = height;
  const context = canvas.getContext("2d", { willReadFrequently: true });
  context.imageSmoothingQuality = "high";
  context.drawImage(source, 0, 0, width, height);
  return context;
}

async function showResult() {
  if (!photo || !current) return;
  const { bitmap } = photo;
  const limit = maxSide();
  const scale = limit > 0 ? Math.min(1, limit / Math.max(bitmap.width, bitmap.height)) : 1;
  const width = Math.max(1, Math.round(bitmap.width * scale));
  const height = Math.max(1, Math.round(bitmap.height * scale));
  const pixels = draw($("input"), bitmap, width, height).getImageData(0, 0, width, height).data;
  const rgb = new Uint8Array(width * height * 3);
  for (let i = 0; i < width * height; i++) {
    rgb[i * 3] = pixels[i * 4];
    rgb[i * 3 + 1] = pixels[i * 4 + 1];
    rgb[i * 3 + 2] = pixels[i * 4 + 2];
  }
  $("download").hidden = true;
  setState("running", `Translating ${width} × ${height}…`);
  const start = performance.now();
  const rgba = await translate(rgb, height, width, (done, total) => {
    $("status").textContent = `Translating ${width} × ${height}: tile ${done} of ${total}`;
  });
  const seconds = (performance.now() - start) / 1000;
  const output = $("output");
  output.width = width;
  output.height = height;
  output.getContext("2d").putImageData(new ImageData(rgba, width, height), 0, 0);
  const tiles = tileStarts(height, current.entry.size[0], current.entry.tile_overlap).length *
    tileStarts(width, current.entry.size[1], current.entry.tile_overlap).length;
  const runtime = current.accelerator === "webgpu" ? "WebGPU" : "WebAssembly (CPU)";
  $("time").textContent = `${width} × ${height} in ${seconds.toFixed(2)} s · ${tiles} tile${tiles > 1 ? "s" : ""} · ${runtime}`;
  $("download").href = output.toDataURL("image/png");
  $("download").download = photo.name.replace(/\.[^.]*$/, "") + `_${current.entry.direction}.png`;
  $("download").hidden = false;
  setState("done", "Done.");
}

async function openFile(file) {
  if (!file) return;
  try {
    // Pixels as stored: no colour-space conversion, so the page sees what Python reads.
    const bitmap = await createImageBitmap(file, { colorSpaceConversion: "none", premultiplyAlpha: "none" });
    photo = { bitmap, name: file.name || "image.png" };
    $("panels").hidden = false;
    await showResult();
  } catch (error) {
    fail(`Could not translate ${file.name}: ${error.message || error}`);
  }
}

function fail(message) {
  console.error(message);
  document.body.dataset.error = message;
  setState("error", message);
}

async function chooseModel(index) {
  const entry = window.config.models[index];
  setState("loading", `Loading ${entry.file}…`);
  current = await compile(entry);
  setState("ready", "Pick or drop a photo.");
}

async function main() {
  setState("loading", "Loading the runtime…");
  const config = await (await fetch("model.json")).json();
  window.config = config;
  $("title").textContent = config.title;
  const select = $("direction");
  config.models.forEach((entry, i) => select.add(new Option(entry.label, String(i))));
  select.hidden = config.models.length < 2;
  // The runtime's directory: LiteRT.js picks the relaxed-SIMD build where the
  // browser has it, else the compat one (both shipped in litert/).
  await loadLiteRt(new URL("litert/", location.href).href);
  await chooseModel(0);

  select.addEventListener("change", async () => {
    try {
      await chooseModel(Number(select.value));
      await showResult();
    } catch (error) {
      fail(String(error.message || error));
    }
  });
  $("max-side").addEventListener("change", () => showResult().catch((e) => fail(String(e.message || e))));
  $("file").addEventListener("change", (event) => openFile(event.target.files[0]));
  const drop = $("drop");
  drop.addEventListener("dragover", (event) => {
    event.preventDefault();
    drop.classList.add("over");
  });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    openFile(event.dataTransfer.files[0]);
  });
}

main().catch((error) => fail(String(error.message || error)));
