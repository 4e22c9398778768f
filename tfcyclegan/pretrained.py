"""The authors' published generators by name: `tfcyclegan pretrained list | get NAME`.

The authors of CycleGAN and pix2pix publish generators trained on their
datasets (junyanz/pytorch-CycleGAN-and-pix2pix, `scripts/download_cyclegan_model.sh`
and `scripts/download_pix2pix_model.sh`). `MODELS` is that list as data: one
`PretrainedModel` record per generator, with the names of the authors' scripts,
the URL, the architecture the file must hold and (where known) its sha256.

`get(name)` downloads a file once (resuming a partial download with an HTTP
Range request), checks it (its size against the server's, its sha256 where
recorded, then the importer's all-or-nothing key and shape check), converts it
with `torch_import` and keeps the `.keras` file in the cache
(`~/.keras/tfcyclegan/pretrained/<method>/<name>.keras`, or under
`$KERAS_HOME`). A cached model needs no network. `resolve_model` is how every
command's `--model pretrained:NAME` becomes that file.

Three names (sat2map, map2sat, facades_label2photo) are published both as a
CycleGAN and as a pix2pix generator: say `cyclegan/sat2map` or `pix2pix/sat2map`.

Environment:
    TFCYCLEGAN_PRETRAINED_URL: the server the files come from (default the
        authors', `BASE_URL`), e.g. a mirror.
    TFCYCLEGAN_PRETRAINED_DIR: the cache folder (default under the Keras home).
"""

import dataclasses
import hashlib
import http.client
import importlib.util
import math
import os
import pathlib
import re
import sys
import urllib.error
import urllib.request

from tfcyclegan import fileio
from tfcyclegan.version import __version__

BASE_URL = "http://efrosgans.eecs.berkeley.edu"
URL_ENV = "TFCYCLEGAN_PRETRAINED_URL"
CACHE_ENV = "TFCYCLEGAN_PRETRAINED_DIR"
PREFIX = "pretrained:"

LICENCE = (
    "weights published by the authors with their BSD-licensed code; "
    "check the dataset's terms for your use"
)

_CHUNK = 1 << 20  # bytes read and written at a time
_TIMEOUT = 60  # seconds without a byte before a download counts as stalled


@dataclasses.dataclass(frozen=True)
class PretrainedModel:
    """One published generator: where it is, what it does, what it must hold.

    Args:
        name: the authors' name (`horse2zebra`, `style_monet`).
        method: `cyclegan` or `pix2pix`: whose download script lists it.
        translates: what it does, in words (`"horse -> zebra"`).
        dataset: the authors' dataset it was trained on.
        path: the file under the base URL (`cyclegan/pretrained_models/horse2zebra.pth`).
        netG, ngf, norm, dropout: the architecture the file must hold
            (`import_generator`'s arguments; a file that differs is refused).
        sha256: the file's hash when it is known; None: not checked.
        licence: the terms, in one line.
    """

    name: str
    method: str
    translates: str
    dataset: str
    path: str
    netG: str
    ngf: int
    norm: str
    dropout: bool
    sha256: str | None = None
    licence: str = LICENCE

    @property
    def key(self):
        """`method/name`: unique, where `name` alone may not be."""
        return f"{self.method}/{self.name}"

    def url(self, base_url=None):
        """The file's URL on `base_url` (default: $TFCYCLEGAN_PRETRAINED_URL, else `BASE_URL`)."""
        base = base_url or os.environ.get(URL_ENV) or BASE_URL
        return f"{base.rstrip('/')}/{self.path}"

    @property
    def architecture(self):
        """The architecture in words, as `tfcyclegan pretrained list` shows it."""
        if self.netG.startswith("resnet_"):
            blocks = self.netG[len("resnet_"):-len("blocks")]
            upsampling = "transposed-conv upsampling"
            return f"ResNet-{blocks}, ngf {self.ngf}, {self.norm} norm, {upsampling}"
        return f"U-Net {self.netG[len('unet_'):]}, ngf {self.ngf}, {self.norm} norm"


def _cyclegan(name, translates, dataset):
    # The authors' CycleGAN generators: ResNet-9, instance norm, trained with
    # --no_dropout (their README tests them with it).
    return PretrainedModel(name, "cyclegan", translates, dataset, f"cyclegan/pretrained_models/{name}.pth",
                           netG="resnet_9blocks", ngf=64, norm="instance", dropout=False)


def _pix2pix(name, translates, dataset):
    # The authors' pix2pix generators: U-Net 256, batch norm (normalized with
    # each image's statistics, as their test.py does); dropout leaves no key,
    # so it is the reference's default and only matters for training.
    return PretrainedModel(name, "pix2pix", translates, dataset, f"pix2pix/models-pytorch/{name}.pth",
                           netG="unet_256", ngf=64, norm="batch", dropout=True)


# The authors' scripts, in their order.
_PUBLISHED = (
    _cyclegan("apple2orange", "apple -> orange", "apple2orange"),
    _cyclegan("orange2apple", "orange -> apple", "apple2orange"),
    _cyclegan("summer2winter_yosemite", "summer -> winter (Yosemite)", "summer2winter_yosemite"),
    _cyclegan("winter2summer_yosemite", "winter -> summer (Yosemite)", "summer2winter_yosemite"),
    _cyclegan("horse2zebra", "horse -> zebra", "horse2zebra"),
    _cyclegan("zebra2horse", "zebra -> horse", "horse2zebra"),
    _cyclegan("monet2photo", "Monet painting -> photo", "monet2photo"),
    _cyclegan("style_monet", "photo -> Monet painting", "monet2photo"),
    _cyclegan("style_cezanne", "photo -> Cezanne painting", "cezanne2photo"),
    _cyclegan("style_ukiyoe", "photo -> Ukiyo-e print", "ukiyoe2photo"),
    _cyclegan("style_vangogh", "photo -> Van Gogh painting", "vangogh2photo"),
    _cyclegan("sat2map", "aerial photo -> map", "maps"),
    _cyclegan("map2sat", "map -> aerial photo", "maps"),
    _cyclegan("cityscapes_photo2label", "street photo -> label map", "cityscapes"),
    _cyclegan("cityscapes_label2photo", "label map -> street photo", "cityscapes"),
    _cyclegan("facades_photo2label", "facade photo -> label map", "facades"),
    _cyclegan("facades_label2photo", "label map -> facade photo", "facades"),
    _cyclegan("iphone2dslr_flower", "iPhone flower photo -> DSLR (shallow depth of field)",
              "iphone2dslr_flower"),
    _pix2pix("edges2shoes", "edges -> shoe photo", "edges2shoes"),
    _pix2pix("sat2map", "aerial photo -> map", "maps"),
    _pix2pix("map2sat", "map -> aerial photo", "maps"),
    _pix2pix("facades_label2photo", "label map -> facade photo", "facades"),
    _pix2pix("day2night", "day photo -> night photo", "night2day"),
)

# The table, by `method/name`. Tests (and mirrors of other files) add records here.
MODELS = {record.key: record for record in _PUBLISHED}


# =============================================================================
# Names
# =============================================================================


def _matches(name):
    if name in MODELS:
        return [MODELS[name]]
    return [record for record in MODELS.values() if record.name == name]


def spelling(record):
    """The shortest name that picks `record`: its name, or `method/name` when shared."""
    return record.name if len(_matches(record.name)) == 1 else record.key


def lookup(name):
    """The record of `name` (`horse2zebra`, or `pix2pix/sat2map` for a shared name).

    Raises:
        ValueError: no such name (the message lists them), or a name that both
            methods publish (the message gives both spellings).
    """
    found = _matches(name)
    if len(found) == 1:
        return found[0]
    if found:
        choices = " or ".join(f"{record.key} ({record.translates}, {record.architecture})" for record in found)
        raise ValueError(f"Two published generators are called {name!r}: say {choices}. "
                         f"Received: {name!r}")
    known = ", ".join(spelling(record) for record in MODELS.values())
    raise ValueError(f"No published generator is called {name!r}. Known: {known} "
                     "(tfcyclegan pretrained list describes them).")


def resolve_model(model, *, cache_dir=None, base_url=None, progress=False):
    """`model` as a path: `pretrained:NAME` becomes its cached `.keras` file (see `get`).

    Anything else (a run folder, a `.keras` file, ...) is returned as it is.
    """
    if isinstance(model, str) and model.startswith(PREFIX):
        return get(model[len(PREFIX):], cache_dir=cache_dir, base_url=base_url, progress=progress)
    return model


# =============================================================================
# The cache
# =============================================================================


def cache_root(cache_dir=None):
    """The cache folder: `cache_dir`, else $TFCYCLEGAN_PRETRAINED_DIR, else
    `<Keras home>/tfcyclegan/pretrained` (`~/.keras`, or $KERAS_HOME)."""
    chosen = cache_dir or os.environ.get(CACHE_ENV)
    if chosen:
        return pathlib.Path(os.fspath(chosen)).expanduser()
    # Keras's own rule (keras.utils.get_file), which Keras 3 does not export.
    keras_home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return pathlib.Path(keras_home) / "tfcyclegan" / "pretrained"


def cached_path(record, cache_dir=None):
    """Where `record`'s `.keras` file is (or will be) in the cache."""
    return cache_root(cache_dir) / record.method / f"{record.name}.keras"


def get(name, *, cache_dir=None, base_url=None, progress=False):
    """The `.keras` file of a published generator: from the cache, or downloaded and converted once.

    A cached file is returned without any network access. Otherwise the
    `.pth` is downloaded beside it (`NAME.pth.part` until it is whole: a
    download that stops is resumed by the next call), checked (size, the
    recorded sha256, then the keys and shapes of the record's architecture),
    converted with `torch_import.import_generator` and saved atomically; the
    `.pth` is then deleted. A file that fails a check is deleted and nothing
    is cached. One process at a time writes a method's cache folder.

    Args:
        name: `horse2zebra`, or `method/name` (`pix2pix/sat2map`) for a name
            both methods publish.
        cache_dir: the cache folder (default: `cache_root()`).
        base_url: the server (default: $TFCYCLEGAN_PRETRAINED_URL, else the authors').
        progress: print what happens and a progress bar (a redrawn bar on a
            terminal, one line elsewhere).

    Returns:
        a `pathlib.Path` to the `.keras` file: one generator, G (a2b).

    Raises:
        ValueError: an unknown name, or a download that is not the published
            file (wrong sha256, not a state_dict, other keys or shapes).
        OSError: the server could not be reached or the download stopped; the
            message names the URL and how to convert a file fetched elsewhere
            (`tfcyclegan import-torch`).
        ImportError: reading `.pth` files needs torch (the [torch] extra).
    """
    record = lookup(name)
    target = cached_path(record, cache_dir)
    if target.is_file():
        return target
    _require_torch(record)
    url = record.url(base_url)
    with fileio.RunLock(target.parent, purpose="cache of pretrained models"):
        weights = target.with_suffix(".pth")
        if not weights.is_file():  # else: downloaded and checked, but not converted yet
            try:
                download(url, weights, sha256=record.sha256, progress=progress)
            except OSError as error:
                raise OSError(f"{error} {_elsewhere(record)}") from error
        _convert(record, url, weights, target)
        weights.unlink()
    return target


def _elsewhere(record):
    return (f"If this machine cannot fetch it, download that file on one that can, copy it here and convert it: "
            f"tfcyclegan import-torch {record.name}.pth --out {record.name}.keras "
            f"(then --model {record.name}.keras).")


def _require_torch(record):
    # Before the download: a file that cannot be read here is not worth fetching.
    if importlib.util.find_spec("torch") is None:
        raise ImportError(
            f"The authors publish {spelling(record)} as a PyTorch .pth file, and reading it needs "
            "torch: pip install 'tfcyclegan[torch]' (the CPU build is enough). Where torch is "
            f"installed, `tfcyclegan pretrained get {spelling(record)}` makes the .keras file, "
            "which needs no torch."
        )


def _convert(record, url, weights, target):
    from tfcyclegan import torch_import

    try:
        generator = torch_import.import_generator(
            weights, netG=record.netG, ngf=record.ngf, norm=record.norm, dropout=record.dropout)
    except ValueError as error:
        weights.unlink()
        raise ValueError(
            f"{url} did not give the published {spelling(record)} generator ({record.architecture}), "
            f"so nothing was cached and the download was deleted: {error}"
        ) from error
    with fileio.atomic_path(target, suffix=".keras") as tmp:
        generator.save(tmp)


# =============================================================================
# Downloading
# =============================================================================


def download(url, path, *, sha256=None, progress=False, timeout=_TIMEOUT):
    """Downloads `url` to `path`, resuming a partial download; checks size and sha256.

    The bytes go to `path` + `.part` as they arrive; an existing `.part` is
    continued with an HTTP Range request (a server that ignores it sends the
    whole file again, which replaces the part). `path` appears, in one
    rename, only when the file is whole: as many bytes as the server
    announced, and the recorded `sha256` if one is given.

    Returns:
        the file's sha256 (hex).

    Raises:
        OSError: the server could not be reached, answered with an error, or
            the download stopped (the `.part` is kept: call again to resume).
        ValueError: the file is not the expected one (its size exceeds the
            server's, or its sha256 differs); the `.part` is deleted.
    """
    path = pathlib.Path(path)
    part = path.with_name(path.name + ".part")
    size, total = _fetch(url, part, progress, timeout)
    if total is not None and size != total:
        if size < total:
            raise OSError(f"The download of {url} stopped at {size} of {total} bytes. Run the same "
                          f"command again to resume it (the part is kept: {part}).")
        part.unlink()
        raise ValueError(f"{url} gave {size} bytes, more than the {total} it announced: not the "
                         "published file. Deleted it; nothing was cached.")
    digest = _sha256_of(part)
    if sha256 is not None and digest != sha256.lower():
        part.unlink()
        raise ValueError(f"{url} gave a file with sha256 {digest}, not the recorded {sha256}: not the "
                         "published file (corrupt, or changed on the server). Deleted it; nothing was "
                         "cached.")
    os.replace(part, path)
    if progress:
        print(f"{path.name}: {size} bytes, sha256 {digest}")
    return digest


def _fetch(url, part, progress, timeout):
    """Brings `part` up to date with `url`; returns (bytes in `part`, the file's size or None)."""
    start = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": f"tfcyclegan/{__version__}"})
    if start:
        request.add_header("Range", f"bytes={start}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as error:
        if error.code == 416 and start:  # asked to resume at or past the end
            total = _total_of(error.headers.get("Content-Range"))
            if total == start:  # the part is whole (stopped before its rename)
                return start, total
            part.unlink()  # longer than the file: not a part of it
            return _fetch(url, part, progress, timeout)
        raise OSError(f"Could not download {url}: the server answered {error.code} {error.reason}.") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as error:
        reason = getattr(error, "reason", None) or error
        raise OSError(f"Could not download {url} ({reason}).") from None
    with response:
        if response.status == 206:
            total = _total_of(response.headers.get("Content-Range"))
            first = _first_byte_of(response.headers.get("Content-Range"))
            if first != start:
                raise OSError(f"Could not resume the download of {url}: asked for byte {start}, "
                              f"the server sent from {first}.")
        else:  # 200: the whole file (a server without Range support starts again)
            start = 0
            length = response.headers.get("Content-Length")
            total = int(length) if length is not None else None
        if progress:
            print(f"Downloading {url}" + (f" (resuming at {start} bytes)" if start else ""))
        return _receive(response, part, start, total, url, progress), total


def _receive(response, part, start, total, url, progress):
    bar = None
    if progress:
        import keras  # only for the progress bar, as translate's

        # Kilobytes: Progbar counts whole units.
        bar = keras.utils.Progbar(None if total is None else math.ceil(total / 1024), unit_name="kB",
                                  verbose=1 if sys.stdout.isatty() else 2)
    received = start
    with open(part, "ab" if start else "wb") as out:
        try:
            while chunk := response.read(_CHUNK):
                out.write(chunk)
                received += len(chunk)
                if bar is not None:
                    bar.update(math.ceil(received / 1024))
        except (OSError, http.client.HTTPException) as error:
            of = f" of {total}" if total is not None else ""
            raise OSError(f"The download of {url} stopped at {received}{of} bytes ({type(error).__name__}). "
                          f"Run the same command again to resume it (the part is kept: {part}).") from None
    return received


_CONTENT_RANGE = re.compile(r"bytes\s+(?:(\d+)-\d+|\*)/(\d+|\*)")


def _total_of(content_range):
    match = _CONTENT_RANGE.match(content_range or "")
    return int(match.group(2)) if match and match.group(2) != "*" else None


def _first_byte_of(content_range):
    match = _CONTENT_RANGE.match(content_range or "")
    return int(match.group(1)) if match and match.group(1) is not None else None


def _sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


# =============================================================================
# The listing
# =============================================================================


def format_table(cache_dir=None):
    """The published generators as `tfcyclegan pretrained list` prints them."""
    columns = ("NAME", "METHOD", "TRANSLATES", "DATASET", "ARCHITECTURE", "CACHED")
    rows = [
        (spelling(r), r.method, r.translates, r.dataset, r.architecture,
         "yes" if cached_path(r, cache_dir).is_file() else "")
        for r in MODELS.values()
    ]
    widths = [max(len(row[i]) for row in [columns, *rows]) for i in range(len(columns))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in [columns, *rows]]
    licences = sorted({r.licence for r in MODELS.values()})
    lines += [
        "",
        f"Use one as --model pretrained:NAME, or fetch it first: tfcyclegan pretrained get NAME "
        f"(cached in {cache_root(cache_dir)}).",
        "Files: " + ", ".join(sorted({r.url().rsplit("/", 1)[0] + "/NAME.pth" for r in MODELS.values()})),
        *(f"Licence: {licence}." for licence in licences),
    ]
    return "\n".join(lines)
