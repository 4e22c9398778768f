"""The web page (`export --format web`, `tfcyclegan app`) in a real browser.

Headless Chromium (tests/chromium.py, the DevTools Protocol over a pipe) opens the page
served from the loopback address, a PNG is chosen in its file input as a person would,
and the translation the page draws is read back from its canvas and compared with the
Python LiteRT runner on the same .tflite file, tiled the way `translate` tiles.
Tolerance: exact for a photo of one tile (both are the file's uint8 output); at most
one level of 255 where tiles are blended (the page blends pixels in float32 and
rounds, Python blends [-1, 1] values). No browser is a failure naming the package to
install, never a skip.
"""

import base64
import hashlib
import io
import json
import re
import subprocess
import sys
import threading
import urllib.request

import numpy as np
import pytest
from PIL import Image

from tests import chromium
from tfcyclegan import app, imaging, translate
from tfcyclegan.export import export
from tfcyclegan.export.runtime import TFLiteRunner
from tfcyclegan.networks import ResnetGenerator

pytestmark = pytest.mark.slow

TILE = 64  # the web file's fixed size: small, so a 100 x 150 photo takes 2 x 3 tiles


@pytest.fixture(scope="module")
def generator():
    return ResnetGenerator(ngf=4, n_blocks=1, seed=0, name="G")


@pytest.fixture(scope="module")
def exported(generator, tmp_path_factory):
    out = tmp_path_factory.mktemp("export")
    report = export(generator, out, formats=("web",), direction="a2b", tflite_input_size=(TILE, TILE),
                    parity_size=(TILE, TILE), parity_count=1, verbose=False)
    return out, report


@pytest.fixture(scope="module")
def server(exported):
    httpd = app.serve(exported[0] / "web")
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield app.url_of(httpd)
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def browser():
    binary = chromium.find_browser()
    if binary is None:
        pytest.fail(chromium.INSTALL_HINT)
    page = chromium.Chromium(binary)
    yield page
    page.close()


def photo(height, width, seed=0):
    """A smooth colour gradient with some noise: instance norm sees real statistics."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([x / width * 200, y / height * 200, (x + y) / (width + height) * 255], -1)
    return np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)


def reference(tflite_bytes, pixels):
    """What the page should draw: the Python LiteRT runner on tiles of the file's size
    (each reflect-padded at the bottom and right to it, as the page pads), blended by
    `translate.translate_tiled`."""
    runner = TFLiteRunner(tflite_bytes)
    overlap = TILE // 8

    def run(batch):
        height, width = batch.shape[1:3]
        rows = np.asarray(imaging._mirror_indices(height, TILE))
        cols = np.asarray(imaging._mirror_indices(width, TILE))
        padded = batch[:, rows][:, :, cols]
        return runner(padded)[:, :height, :width]

    tiled = translate.translate_tiled(run, imaging.to_float_array(pixels), tile=TILE, overlap=overlap)
    return imaging.to_uint8_array(tiled)


def canvas_pixels(page, canvas_id):
    url = page.evaluate(f"document.getElementById('{canvas_id}').toDataURL('image/png')")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("RGB"))


def _state_in(*states):
    """A JavaScript expression: the page's state when it is one of `states`, else false."""
    return f"document.body && {list(states)}.includes(document.body.dataset.state) && document.body.dataset.state"


def translate_in_page(page, url, image_path):
    page.navigate(url + "?max=0")
    state = page.wait_for(_state_in("ready", "error"))
    assert state == "ready", f"{page.evaluate('document.body.dataset.error')}; {page.console()}"
    page.set_files("#file", [image_path])
    state = page.wait_for(_state_in("done", "error"))
    assert state == "done", f"{page.evaluate('document.body.dataset.error')}; {page.console()}"


@pytest.mark.parametrize(
    "size, tolerance",
    [((TILE, TILE), 0), ((100, 150), 1), ((40, 50), 0)],
    ids=["one_tile", "six_tiles", "smaller_than_a_tile"],
)
def test_page_translates_like_the_python_runner(exported, server, browser, tmp_path, size, tolerance):
    out, report = exported
    tflite_bytes = (out / report.web["a2b"]["path"]).read_bytes()
    pixels = photo(*size)
    image_path = tmp_path / "photo.png"
    Image.fromarray(pixels).save(image_path)

    translate_in_page(browser, server, image_path)

    np.testing.assert_array_equal(canvas_pixels(browser, "input"), pixels)
    drawn = canvas_pixels(browser, "output")
    expected = reference(tflite_bytes, pixels)
    assert drawn.shape == expected.shape
    difference = np.abs(drawn.astype(int) - expected.astype(int))
    assert difference.max() <= tolerance, f"max difference {difference.max()} levels"
    text = browser.evaluate("document.getElementById('time').textContent")
    assert f"{size[1]} × {size[0]} in" in text and "WebAssembly" in text, text
    assert browser.evaluate("!document.getElementById('download').hidden")
    browser.screenshot(tmp_path / "web_app.png")
    assert Image.open(tmp_path / "web_app.png").size[0] > 0


def test_export_writes_the_page_and_runtime(exported):
    out, report = exported
    web = out / "web"
    config = json.loads((web / "model.json").read_text())
    assert config["litertjs"] == "2.5.3"
    assert config["models"] == [{
        "direction": "a2b", "label": "A → B", "file": "cyclegan_a2b_fp16_uint8_64x64.tflite",
        "size": [TILE, TILE], "tile_overlap": TILE // 8, "mode": "fp16",
    }]
    for name in ("index.html", "app.js", "litert/index.js", "litert/wasm-utils.js", "litert/LICENSE",
                 "litert/litert_wasm_internal.wasm", "litert/litert_wasm_compat_internal.wasm"):
        assert (web / name).is_file(), name
    # The runtime as unpacked from npm (the .wasm builds are shipped gzipped): its recorded sha256.
    sums = re.findall(r"^([0-9a-f]{64})  (\S+)$", (web / "litert" / "README.md").read_text(), re.MULTILINE)
    assert {name for _, name in sums} >= {"litert_wasm_internal.wasm", "litert_wasm_compat_internal.wasm"}
    for digest, name in sums:
        assert hashlib.sha256((web / "litert" / name).read_bytes()).hexdigest() == digest, name
    assert not list((web / "litert").glob("*.gz"))
    assert report.web["a2b"]["size"] == [TILE, TILE]
    assert report.parity["a2b"]["web/fp16_uint8"]["psnr_db"] > 40


def test_web_refuses_int8_without_data(generator, tmp_path):
    with pytest.raises(ValueError, match="web_mode='int8' needs representative_data"):
        export(generator, tmp_path, formats=("web",), web_mode="int8")


def test_web_refuses_a_grayscale_generator(tmp_path):
    gray = ResnetGenerator(ngf=4, n_blocks=1, input_channels=1, output_channels=1)
    with pytest.raises(ValueError, match="needs a generator with 3 input and 3 output channels"):
        export(gray, tmp_path, formats=("web",))


def test_app_exports_a_keras_file_once_into_the_cache(generator, tmp_path):
    model = tmp_path / "G.keras"
    generator.save(model)
    cache = tmp_path / "cache"
    first = app.web_folder(model, tflite_input_size=(TILE, TILE), cache_dir=cache, verbose=False)
    assert (first / "model.json").is_file() and first.parent.parent == cache
    assert app.web_folder(model, tflite_input_size=(TILE, TILE), cache_dir=cache) == first  # no export
    assert app.web_folder(first) == first
    assert app.web_folder(first.parent) == first  # the export folder


def test_app_refuses_an_export_without_a_page(tmp_path):
    (tmp_path / "export_report.json").write_text("{}")
    with pytest.raises(ValueError, match="has no web page"):
        app.web_folder(tmp_path)


def test_cli_app_serves_the_page_on_loopback(exported):
    process = subprocess.Popen(
        [sys.executable, "-m", "tfcyclegan", "app", "--model", str(exported[0])],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        lines = [process.stdout.readline(), process.stdout.readline()]
        url = lines[1].split()[1]
        assert url.startswith("http://127.0.0.1:"), lines
        with urllib.request.urlopen(url + "litert/litert_wasm_internal.wasm", timeout=30) as response:
            assert response.headers["Content-Type"] == "application/wasm"
        with urllib.request.urlopen(url, timeout=30) as response:
            assert b'id="file"' in response.read()
    finally:
        process.terminate()
        process.wait(timeout=30)
