"""`tfcyclegan app`: a model's web page (`export.web`), served on this machine.

`web_folder` finds or makes the page: a folder `export(..., formats=("web",))`
wrote is used as it is; a run folder or `.keras` file is exported once into a cache
(`<Keras home>/tfcyclegan/web/<key>`, the key a hash of the model's files and the
export's settings), so a second start is immediate. `serve` hosts the folder on the
loopback address only: the page runs the model in the browser, the server only hands
out files.
"""

import functools
import hashlib
import http.server
import json
import os
import pathlib
import shutil
import sys
import tempfile

CACHE_ENV = "TFCYCLEGAN_WEB_DIR"
"""Environment variable naming the cache of exported pages (default under the Keras home)."""


def cache_root(cache_dir=None):
    """`cache_dir`, else $TFCYCLEGAN_WEB_DIR, else `<Keras home>/tfcyclegan/web`."""
    chosen = cache_dir or os.environ.get(CACHE_ENV)
    if chosen:
        return pathlib.Path(os.fspath(chosen)).expanduser()
    keras_home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return pathlib.Path(keras_home) / "tfcyclegan" / "web"


def _cache_key(model, settings):
    """A hash of every file of `model` (path, size, time) and the export's settings:
    a model trained further, or asked for another size or mode, gets a new page."""
    from tfcyclegan.version import __version__

    model = pathlib.Path(model).resolve()
    files = [model] if model.is_file() else sorted(p for p in model.rglob("*") if p.is_file())
    digest = hashlib.sha256(json.dumps([os.fspath(model), __version__, settings]).encode())
    for path in files:
        stat = path.stat()
        digest.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def web_folder(model, direction="both", web_mode=None, tflite_input_size=None,
               representative_data=None, checkpoint=None, epoch=None, cache_dir=None, verbose=True):
    """The folder of `model`'s web page, exported into the cache first if needed.

    Args:
        model: a web page folder (`export.web`), an export folder holding one
            (`OUT/web`), a run folder or a `.keras` file.
        direction, web_mode, tflite_input_size, representative_data: as in
            `export.export` (for a model that is exported here).
        checkpoint, epoch: for a run folder, the state to export.
        cache_dir: where exported pages are kept (`cache_root`).
        verbose: say where the page was exported.

    Returns:
        The folder (a `pathlib.Path`) holding index.html and model.json.

    Raises:
        FileNotFoundError: nothing at `model`.
        ValueError: `model` is an export folder without a web page, or a
            file that is no `.keras` model.
    """
    from tfcyclegan.export.runtime import REPORT_NAME
    from tfcyclegan.export.web import DEFAULT_WEB_MODE, web_dir_of

    path = pathlib.Path(model)
    if not path.exists():
        raise FileNotFoundError(f"No model at {path}: expected a run folder, .keras file or web export.")
    found = web_dir_of(path)
    if found is not None:
        return found
    if path.is_dir() and (path / REPORT_NAME).is_file() and not (path / "model.json").exists() \
            and not (path / "config.json").exists():
        raise ValueError(
            f"The export at {path} has no web page. Export one with `tfcyclegan export "
            f"--model RUN_OR_KERAS --out {path} --format web`, or pass the run folder or "
            ".keras file to `tfcyclegan app`."
        )
    if path.is_file() and path.suffix != ".keras":
        raise ValueError(
            f"`tfcyclegan app` takes a run folder, a .keras file or a web export. Received: {path}"
        )
    web_mode = web_mode or DEFAULT_WEB_MODE
    settings = dict(direction=direction, web_mode=web_mode, size=tflite_input_size,
                    data=None if representative_data is None else os.fspath(representative_data),
                    checkpoint=checkpoint, epoch=epoch)
    target = cache_root(cache_dir) / _cache_key(path, settings)
    if (target / "web" / "model.json").is_file():
        return target / "web"
    _export_into(target, path, settings, verbose)
    return target / "web"


def _export_into(target, path, settings, verbose):
    """Exports the page into a temporary folder beside `target`, then renames it: an
    interrupted export leaves no half page in the cache."""
    from tfcyclegan.export import export, loading

    target.parent.mkdir(parents=True, exist_ok=True)
    model = path
    if settings["checkpoint"] is not None or settings["epoch"] is not None:
        model = loading.load_keras(path, checkpoint=settings["checkpoint"], epoch=settings["epoch"])
    tmp = pathlib.Path(tempfile.mkdtemp(dir=target.parent, prefix=".export-"))
    try:
        export(model, tmp, formats=("web",), direction=settings["direction"],
               web_mode=settings["web_mode"], tflite_input_size=settings["size"],
               representative_data=settings["data"], verbose=False)
        if not target.exists():  # else another process made it meanwhile
            os.replace(tmp, target)
        if verbose:
            print(f"Exported the web page of {path} into {target / 'web'} "
                  f"(its report: {target / 'export_report.json'})")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Static files; .wasm as application/wasm (WebAssembly's streaming compile needs it)."""

    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map,
                      ".wasm": "application/wasm", ".js": "text/javascript", ".tflite": "application/octet-stream"}

    def end_headers(self):
        # A page under development is reloaded, not read from the browser's cache.
        self.send_header("Cache-Control", "no-cache")
        super().end_headers()

    def log_message(self, format, *args):
        pass  # one line per file would bury the URL


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # A browser that cancels a download (a reload, a closed tab) is no error.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def serve(folder, port=0, host="127.0.0.1"):
    """An HTTP server for `folder` on `host`:`port` (0: a free port), not yet running.

    Call `serve_forever()` (or run it in a thread); its URL is `url_of(server)`.
    """
    handler = functools.partial(_Handler, directory=os.fspath(folder))
    return _Server((host, port), handler)


def url_of(server):
    host, port = server.server_address[:2]
    return f"http://{host}:{port}/"
