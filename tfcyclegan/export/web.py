"""The web page of `tfcyclegan export --format web`: photos translated in the browser.

`write_web_app` writes a static folder that any web server can host:

    index.html, app.js        the page: pick or drop a photo, see it and its translation
                              side by side, the time taken, a download button
    model.json                the .tflite files, their fixed size and tile overlap
    NAME_a2b_fp16_uint8_256x256.tflite    one per direction (`export` converts them)
    litert/                   LiteRT.js 2.5.3 (WebAssembly; WebGPU where the browser has it)

The .tflite files are fixed-size with uint8 pixels in and out: LiteRT.js 2.5.3 runs only
the shapes a file stores (a dynamic-size file's run fails: "TensorBuffer ranked tensor
type Float32[1, 64, 64, 3] does not match expected ranked tensor type Float32[-1, -1,
-1, 3]"), and a canvas gives uint8 pixels. The page translates a photo in tiles of the
file's size with blended seams, as `tfcyclegan translate` tiles large photos, and a photo
smaller than a tile reflect-padded to it.

LiteRT.js is shipped inside this package (`webapp/litert/`, Apache-2.0 with its licence
text; README.md there lists the files and their checksums) rather than fetched at export
time: users of a pip package have no npm, and an export then works offline. It costs
~6 MB in the repository, the wheel and the install (the two .wasm builds, relaxed-SIMD
and compat for browsers without relaxed SIMD, are kept gzipped and unpacked into each
page, ~19 MB there).
"""

import gzip
import json
import pathlib
import shutil

from tfcyclegan.config import check_choice
from tfcyclegan.export.loading import channels_of
from tfcyclegan.fileio import atomic_write

LITERTJS_VERSION = "2.5.3"
"""The LiteRT.js release shipped in `webapp/litert/` (npm `@litertjs/core`)."""

WEB_MODES = ("fp32", "fp16", "int8")
DEFAULT_WEB_MODE = "fp16"
"""fp16: half the download of fp32 at its quality (the browser computes in float32)."""

WEB_DIR = "web"
"""The page's folder inside an export folder."""

STATIC_DIR = pathlib.Path(__file__).parent / "webapp"

_PAGE_FILES = ("index.html", "app.js")

_LABELS = {"a2b": "A → B", "b2a": "B → A"}


def check_web_mode(mode):
    check_choice("web_mode", mode, WEB_MODES)
    return mode


def check_web_generator(generator):
    """Raises ValueError unless `generator` maps RGB to RGB (what a canvas holds)."""
    channels = channels_of(generator)
    if channels != (3, 3):
        raise ValueError(
            "The web page translates RGB photos: it needs a generator with 3 input and 3 "
            f"output channels. Received: {generator.name} with channels (in, out)={channels}. "
            "Export it without --format web."
        )


def tile_overlap_for(size):
    """Pixels neighbouring tiles share: an eighth of the tile's shorter side.

    `tfcyclegan translate` overlaps its 1024 px tiles by 64 (docs/large_images.md);
    the web's tiles are the file's size (the training size, at least 256 px,
    unless `tflite_input_size` is given), so the overlap scales with them: 32 px of 256.
    """
    return min(size) // 8


def model_file_name(name, mode, size):
    """`cyclegan_a2b_fp16_uint8_256x256.tflite`: the size is part of what the file is."""
    return f"{name}_{mode}_uint8_{size[0]}x{size[1]}.tflite"


def write_web_app(web_dir, models, title="tfcyclegan"):
    """Writes the page, LiteRT.js and `model.json` into `web_dir` (the .tflite files are
    the caller's).

    Args:
        web_dir: the folder (created; files already there are replaced).
        models: one dict per direction: {"direction", "file" (beside index.html),
            "size" [H, W], "mode"}; the page offers them in this order.
        title: the page's heading.

    Returns:
        The `model.json` content (a dict).
    """
    web_dir = pathlib.Path(web_dir)
    (web_dir / "litert").mkdir(parents=True, exist_ok=True)
    for name in _PAGE_FILES:
        shutil.copyfile(STATIC_DIR / name, web_dir / name)
    for path in sorted((STATIC_DIR / "litert").iterdir()):
        if path.suffix == ".gz":  # the .wasm builds travel gzipped (9 MB -> 2.8 MB each)
            with gzip.open(path, "rb") as packed, open(web_dir / "litert" / path.stem, "wb") as out:
                shutil.copyfileobj(packed, out)
        else:
            shutil.copyfile(path, web_dir / "litert" / path.name)
    config = {
        "format": "tfcyclegan-web/1",
        "title": title,
        "litertjs": LITERTJS_VERSION,
        "models": [
            {
                "direction": entry["direction"],
                "label": _LABELS.get(entry["direction"], entry["direction"]),
                "file": entry["file"],
                "size": list(entry["size"]),
                "tile_overlap": tile_overlap_for(entry["size"]),
                "mode": entry["mode"],
            }
            for entry in models
        ],
    }
    atomic_write(web_dir / "model.json", json.dumps(config, indent=2) + "\n")
    return config


def is_web_dir(path):
    """Whether `path` is a folder `write_web_app` wrote."""
    path = pathlib.Path(path)
    return (path / "model.json").is_file() and (path / "index.html").is_file()


def web_dir_of(path):
    """The page's folder for `path`: a web folder itself, or an export folder holding one.

    Returns None when `path` is neither.
    """
    path = pathlib.Path(path)
    for candidate in (path, path / WEB_DIR):
        if is_web_dir(candidate):
            return candidate
    return None
