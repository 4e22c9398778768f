"""Where a domain's images come from: folders, lists of files, TFDS splits.

`list_images` walks a folder (recursively, hidden entries skipped) and counts
what it ignores. An `ImageSource` is one domain, files on disk or a TensorFlow
Datasets split; `resolve_domains` builds both domains (`Domains`) from what a
user typed: a dataset root in the authors' layout (`trainA/`, `trainB/`), two
folders or lists of files, or `tfds:<name>`. Nothing here opens an image.
"""

import collections
import dataclasses
import os
from typing import NamedTuple, Optional


IMAGE_EXTENSIONS = (
    ".bmp",
    ".gif",
    ".jpeg",
    ".jpg",
    ".png",
    ".ppm",
    ".tif",
    ".tiff",
    ".webp",
)
"""Lowercase extensions `list_images` accepts (matched case-insensitively).

The reference's list plus `.gif` and `.webp`. Everything here is decoded by
Pillow; other files are ignored, and counted in messages.
"""


def _scan(directory):
    """Walks `directory` for images.

    Returns:
        (sorted image paths, `Counter` of the other files' extensions,
        number of hidden files and folders skipped).
    """
    root = os.fspath(directory)
    if not os.path.exists(root):
        raise FileNotFoundError(f"Image folder not found: {root}")
    if not os.path.isdir(root):
        raise NotADirectoryError(
            f"Expected a folder of images, but this is a file: {root}"
        )
    images, ignored, hidden = [], collections.Counter(), 0
    # Symlinked folders are followed (datasets are often assembled from
    # links), so remember where we have been to survive link cycles.
    seen = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:
            dirnames[:] = []
            continue
        seen.add(real)
        # Hidden folders (.git, .ipynb_checkpoints) and files (.DS_Store,
        # macOS's `._photo.jpg` resource forks, which end in .jpg but are not
        # images) never hold training data.
        kept = []
        for name in dirnames:
            if name.startswith("."):
                hidden += 1
            else:
                kept.append(name)
        dirnames[:] = sorted(kept)
        for name in filenames:
            if name.startswith("."):
                hidden += 1
                continue
            extension = os.path.splitext(name)[1].lower()
            if extension in IMAGE_EXTENSIONS:
                images.append(os.path.join(dirpath, name))
            else:
                ignored[extension or "(no extension)"] += 1
    return sorted(images), ignored, hidden


def describe_ignored(ignored, hidden):
    """'3 files: 2 .txt, 1 .json; 1 hidden entry ignored' (or '0 files')."""
    total = sum(ignored.values())  # `ignored` maps extension -> count.
    text = f"{total} other file{'s' if total != 1 else ''}"
    if total:
        counts = sorted(ignored.items(), key=lambda item: (-item[1], item[0]))
        text += ": " + ", ".join(f"{count} {ext}" for ext, count in counts)
    if hidden:
        text += f"; {hidden} hidden entr{'ies' if hidden != 1 else 'y'} ignored"
    return text


def list_images(directory):
    """Lists the images under `directory`, recursively, sorted by path.

    Files are chosen by extension (`IMAGE_EXTENSIONS`, any case); hidden files
    and folders (names starting with `.`) are skipped. Whether each file really
    is a readable image is `check_images`' job.

    Args:
        directory: a folder (str or path-like).

    Returns:
        A sorted list of file paths (str).

    Raises:
        FileNotFoundError: the folder does not exist, or holds no image files
            (the message counts what it holds instead, by extension).
        NotADirectoryError: `directory` is a file.
    """
    images, ignored, hidden = _scan(directory)
    if not images:
        # "other files" here are all the files, as none is an image.
        found = describe_ignored(ignored, hidden).replace(" other file", " file", 1)
        raise FileNotFoundError(
            f"No images in {os.fspath(directory)}: found 0 images; {found}. "
            f"Accepted extensions: {', '.join(IMAGE_EXTENSIONS)}."
        )
    return images


@dataclasses.dataclass(frozen=True)
class ImageSource:
    """One domain's images: files on disk or a TensorFlow Datasets split.

    Build one with `from_folder`, `from_files` or `from_tfds`; `resolve_domains`
    builds both domains from what a user typed.

    Args:
        name: what messages call it (a folder, or `tfds:<name>/<split>`).
        paths: the image files (file sources).
        ignored: other files in the folder, as `((extension, count), ...)`.
        hidden: hidden files and folders skipped in the folder.
        tfds_name: the TFDS dataset, e.g. `cycle_gan/horse2zebra`.
        tfds_split: its split, e.g. `trainA`.
        tfds_data_dir: where TFDS keeps its data (TFDS's default if None).
    """

    name: str
    paths: tuple = ()
    ignored: tuple = ()
    hidden: int = 0
    tfds_name: Optional[str] = None
    tfds_split: Optional[str] = None
    tfds_data_dir: Optional[str] = None

    @property
    def is_tfds(self):
        return self.tfds_name is not None

    @classmethod
    def from_folder(cls, folder):
        """All images under `folder` (see `list_images` for the errors)."""
        images, ignored, hidden = _scan(folder)
        if not images:
            list_images(folder)  # Raises the counted "found 0 images" error.
        return cls(
            name=os.fspath(folder),
            paths=tuple(images),
            ignored=tuple(sorted(ignored.items())),
            hidden=hidden,
        )

    @classmethod
    def from_files(cls, paths, name=None):
        """Exactly these image files (not checked for existence until used)."""
        paths = tuple(os.fspath(p) for p in paths)
        if not paths:
            raise ValueError(
                f"A domain needs at least one image file. Received: paths=[] "
                f"(name={name!r})"
            )
        return cls(name=name or f"{len(paths)} files", paths=paths)

    @classmethod
    def from_tfds(cls, name, split, data_dir=None):
        """A TFDS split, e.g. `from_tfds("cycle_gan/horse2zebra", "trainA")`."""
        if not isinstance(name, str) or not name:
            raise ValueError(
                f"`tfds_name` must be a dataset name. Received: tfds_name={name!r}"
            )
        return cls(
            name=f"tfds:{name}/{split}",
            tfds_name=name,
            tfds_split=split,
            tfds_data_dir=None if data_dir is None else os.fspath(data_dir),
        )


class Domains(NamedTuple):
    """The two domains of an unpaired dataset: `a` (X) and `b` (Y)."""

    a: ImageSource
    b: ImageSource


def as_source(value):
    """An `ImageSource` from a source, a folder, or a list of image files."""
    if isinstance(value, ImageSource):
        return value
    if isinstance(value, (str, os.PathLike)):
        if os.fspath(value).startswith("tfds:"):
            raise ValueError(
                "A `tfds:` spec names a dataset with two domains; pass it as "
                "resolve_domains(data=...), or build one domain with "
                f"ImageSource.from_tfds(name, split). Received: {os.fspath(value)!r}"
            )
        return ImageSource.from_folder(value)
    if isinstance(value, (list, tuple)):
        return ImageSource.from_files(value)
    raise ValueError(
        "A domain must be a folder, a list of image files or an ImageSource. "
        f"Received: {type(value).__name__}"
    )


def resolve_domains(
    data=None,
    domain_a=None,
    domain_b=None,
    tfds_name=None,
    split="train",
    *,
    tfds_data_dir=None,
):
    """Finds the two domains from what the user gave; exactly one form of:

    - `data`: a dataset root in the authors' layout, where `<split>A/` and
      `<split>B/` are the domains (e.g. `horse2zebra/trainA`), or the string
      `"tfds:<name>"`, e.g. `"tfds:cycle_gan/horse2zebra"`;
    - `domain_a` and `domain_b`: two folders (or lists of image files);
    - `tfds_name`: a TFDS dataset whose splits are `<split>A` / `<split>B`
      (all `cycle_gan/*` configs).

    Args:
        data: dataset root or `tfds:` spec.
        domain_a: domain A (X) folder or files.
        domain_b: domain B (Y) folder or files.
        tfds_name: TFDS dataset name.
        split: `"train"` or `"test"` (any `<split>A`/`<split>B` pair works).
        tfds_data_dir: where TFDS keeps its data (TFDS's default if None).

    Returns:
        `Domains(a, b)` of `ImageSource`s; folders are listed now, so a wrong
        path fails here.
    """
    forms = [data, domain_a if domain_a is not None else domain_b, tfds_name]
    if sum(form is not None for form in forms) != 1:
        raise ValueError(
            "Give exactly one of `data` (dataset root or 'tfds:<name>'), "
            "`domain_a` + `domain_b`, or `tfds_name`. Received: "
            f"data={data!r}, domain_a={domain_a!r}, domain_b={domain_b!r}, "
            f"tfds_name={tfds_name!r}"
        )
    if not isinstance(split, str) or not split:
        raise ValueError(
            f"`split` must be a name like 'train'. Received: split={split!r}"
        )
    if isinstance(data, str) and data.startswith("tfds:"):
        tfds_name = data[len("tfds:"):]
        data = None
    if tfds_name is not None:
        return Domains(
            ImageSource.from_tfds(tfds_name, f"{split}A", tfds_data_dir),
            ImageSource.from_tfds(tfds_name, f"{split}B", tfds_data_dir),
        )
    if data is not None:
        root = os.fspath(data)
        if not os.path.isdir(root):
            raise FileNotFoundError(f"Dataset folder not found: {root}")
        folders = [os.path.join(root, split + letter) for letter in "AB"]
        missing = [f for f in folders if not os.path.isdir(f)]
        if missing:
            found = sorted(
                d for d in os.listdir(root)
                if os.path.isdir(os.path.join(root, d)) and not d.startswith(".")
            )
            raise FileNotFoundError(
                f"Expected the authors' dataset layout with {split}A/ and {split}B/ "
                f"in {root}. Missing: {', '.join(missing)}. Found folders: {found}. "
                "For two arbitrary folders pass domain_a= and domain_b=."
            )
        return Domains(*(ImageSource.from_folder(f) for f in folders))
    if domain_a is None or domain_b is None:
        raise ValueError(
            "Both `domain_a` and `domain_b` are needed. Received: "
            f"domain_a={domain_a!r}, domain_b={domain_b!r}"
        )
    return Domains(as_source(domain_a), as_source(domain_b))
