"""Where images come from: folders, lists of files, TFDS splits, pairs.

`list_images` walks a folder (recursively, hidden entries skipped) and counts
what it ignores. An `ImageSource` is one domain, files on disk or a TensorFlow
Datasets split; `resolve_domains` builds both domains (`Domains`) from what a
user typed: a dataset root in the authors' layout (`trainA/`, `trainB/`), two
folders or lists of files, or `tfds:<name>`.

For paired translation (pix2pix), a `PairedSource` holds aligned pairs: the
authors' `aligned` layout (one image per pair, A left | B right, in
`root/train/`, `root/val/`, `root/test/`) or two folders whose files pair by
name (`a/001.jpg` with `b/001.png`). `resolve_pairs` builds one from what a
user typed and `has_split` tells whether a split exists. Nothing here opens
an image.
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


# ---------------------------------------------------------------------------
# Paired data (pix2pix)
# ---------------------------------------------------------------------------

LAYOUTS = ("aligned", "folders")
"""How a `PairedSource` stores a pair: one A|B image, or a file in each of two folders."""


@dataclasses.dataclass(frozen=True)
class PairedSource:
    """Aligned (A, B) pairs of images on disk.

    Build one with `from_aligned` or `from_folders`; `resolve_pairs` builds
    one from what a user typed.

    Args:
        name: what messages call it (a folder, or "a/ + b/").
        layout: `"aligned"`: each file holds a pair side by side, A in the
            left half and B in the right (the authors' `--dataset_mode
            aligned`); `"folders"`: A and B are files of the same name in two
            folders.
        pairs: `((path_a, path_b), ...)`, sorted. In the aligned layout both
            paths are the same file (the authors' `A_paths == B_paths`).
        unmatched: `((path, reason), ...)`: files of either folder without a
            partner in the other (the folders layout). The pipelines stop on
            them, or skip them with `DataConfig(skip_bad_files=True)`.
        ignored: other files in the folders, as `((extension, count), ...)`.
        hidden: hidden files and folders skipped in the folders.
    """

    name: str
    layout: str
    pairs: tuple
    unmatched: tuple = ()
    ignored: tuple = ()
    hidden: int = 0

    @classmethod
    def from_aligned(cls, folder):
        """The A|B images under `folder`, e.g. `facades/train` (recursively).

        A folder that looks like a dataset root (it holds `train/`) is
        refused: its images would mix the splits. Use `resolve_pairs(data=root,
        split=...)` for a root.
        """
        root = os.fspath(folder)
        splits = [s for s in ("train", "val", "test") if os.path.isdir(os.path.join(root, s))]
        if splits:
            held = ", ".join(s + "/" for s in splits)
            raise ValueError(
                f"{root} looks like a dataset root (it holds {held}), "
                "and its images would mix the splits. Pass one split's folder, e.g. "
                f"{os.path.join(root, splits[0])}, or resolve_pairs(data={root!r}, "
                f"split={splits[0]!r})."
            )
        images, ignored, hidden = _scan(root)
        if not images:
            list_images(root)  # Raises the counted "found 0 images" error.
        return cls(
            name=root,
            layout="aligned",
            pairs=tuple((path, path) for path in images),
            ignored=tuple(sorted(ignored.items())),
            hidden=hidden,
        )

    @classmethod
    def from_folders(cls, domain_a, domain_b):
        """Pairs of files with the same name in two folders.

        A file pairs with the file of the other folder at the same relative
        path without its extension: `a/001.jpg` with `b/001.png`,
        `a/x/7.png` with `b/x/7.png`. Files without a partner are kept in
        `unmatched`, not dropped here, so the pipelines can name them.

        Raises:
            FileNotFoundError: a folder is missing or holds no images.
            ValueError: two files of one folder share a name (`001.jpg` and
                `001.png`), so their partner would be ambiguous.
        """
        folders = [os.fspath(domain_a), os.fspath(domain_b)]
        keyed, ignored, hidden = [], collections.Counter(), 0
        for letter, folder in zip("AB", folders):
            images, other, skipped = _scan(folder)
            if not images:
                list_images(folder)  # Raises the counted "found 0 images" error.
            ignored.update(other)
            hidden += skipped
            keyed.append(_by_name(images, folder, letter))
        by_a, by_b = keyed
        unmatched = []
        for letter, mine, theirs, other in (
            ("A", by_a, by_b, folders[1]), ("B", by_b, by_a, folders[0])
        ):
            for key in sorted(set(mine) - set(theirs)):
                unmatched.append((
                    mine[key],
                    f"no partner: only in domain {letter}; {other} has no file "
                    f"named {key}.*",
                ))
        return cls(
            name=f"{folders[0]} + {folders[1]}",
            layout="folders",
            pairs=tuple((by_a[k], by_b[k]) for k in sorted(set(by_a) & set(by_b))),
            unmatched=tuple(unmatched),
            ignored=tuple(sorted(ignored.items())),
            hidden=hidden,
        )


def _by_name(paths, folder, letter):
    """{relative path without extension, with "/": path} of one folder's images."""
    keyed = {}
    for path in paths:
        key = os.path.splitext(os.path.relpath(path, folder))[0].replace(os.sep, "/")
        if key in keyed:
            raise ValueError(
                f"Domain {letter} has two files named {key}.*: {keyed[key]} and {path}, "
                "so which one pairs with the other domain's file is ambiguous. "
                "Remove or rename one."
            )
        keyed[key] = path
    return keyed


def as_paired_source(value):
    """A `PairedSource` from a source, a folder of A|B images, or `(folder_a, folder_b)`."""
    if isinstance(value, PairedSource):
        return value
    if isinstance(value, (str, os.PathLike)):
        return PairedSource.from_aligned(value)
    if isinstance(value, (list, tuple)) and len(value) == 2:
        return PairedSource.from_folders(*value)
    raise ValueError(
        "Paired data must be a PairedSource, a folder of aligned A|B images, or a "
        f"pair (folder_a, folder_b). Received: {value!r}"
    )


def _split_folders(root, split):
    """The folders `split` of a paired dataset root is in, by layout."""
    return {
        "aligned": [os.path.join(root, split)],
        # The input of the authors' datasets/combine_A_and_B.py: A/train,
        # B/train, files of the same name.
        "folders": [os.path.join(root, "A", split), os.path.join(root, "B", split)],
    }


def has_split(root, split):
    """Whether paired dataset `root` has images for `split` (e.g. "test"), in
    either layout `resolve_pairs(data=root)` reads."""
    if root is None or not os.path.isdir(os.fspath(root)):
        return False
    for folders in _split_folders(os.fspath(root), split).values():
        if all(os.path.isdir(f) and _scan(f)[0] for f in folders):
            return True
    return False


def resolve_pairs(data=None, domain_a=None, domain_b=None, split="train"):
    """Finds aligned pairs from what the user gave; exactly one form of:

    - `data`: a dataset root, in the authors' aligned layout, where
      `<split>/` holds A|B images (`facades/train`, `facades/val`,
      `facades/test`), or with `A/<split>/` and `B/<split>/` holding files of
      the same names (the input of the authors' `combine_A_and_B.py`);
    - `domain_a` and `domain_b`: two folders whose files pair by name
      (`split` is not used).

    Args:
        data: dataset root.
        domain_a: folder of domain A images.
        domain_b: folder of domain B images, named like A's.
        split: `"train"`, `"val"` or `"test"` (any folder name works).

    Returns:
        A `PairedSource`; folders are listed now, so a wrong path fails here.
    """
    if (data is None) == (domain_a is None and domain_b is None):
        raise ValueError(
            "Give exactly one of `data` (a dataset root) or `domain_a` + "
            f"`domain_b`. Received: data={data!r}, domain_a={domain_a!r}, "
            f"domain_b={domain_b!r}"
        )
    if not isinstance(split, str) or not split:
        raise ValueError(
            f"`split` must be a name like 'train'. Received: split={split!r}"
        )
    if data is None:
        if domain_a is None or domain_b is None:
            raise ValueError(
                "Both `domain_a` and `domain_b` are needed. Received: "
                f"domain_a={domain_a!r}, domain_b={domain_b!r}"
            )
        return PairedSource.from_folders(domain_a, domain_b)
    root = os.fspath(data)
    if root.startswith("tfds:"):
        raise ValueError(
            "Paired data is read from files (the aligned layout or two folders); "
            f"TFDS is not supported for it. Received: data={root!r}"
        )
    if not os.path.isdir(root):
        raise FileNotFoundError(f"Dataset folder not found: {root}")
    layouts = _split_folders(root, split)
    if os.path.isdir(layouts["aligned"][0]):
        return PairedSource.from_aligned(layouts["aligned"][0])
    if all(os.path.isdir(f) for f in layouts["folders"]):
        return PairedSource.from_folders(*layouts["folders"])
    found = sorted(
        d for d in os.listdir(root)
        if os.path.isdir(os.path.join(root, d)) and not d.startswith(".")
    )
    hint = ""
    if f"{split}A" in found and f"{split}B" in found:
        hint = (
            f" {split}A/ and {split}B/ are the unpaired layout; if their files pair by "
            f"name, pass domain_a={os.path.join(root, split + 'A')!r} and "
            f"domain_b={os.path.join(root, split + 'B')!r}."
        )
    raise FileNotFoundError(
        f"Expected paired data in {root}: {split}/ with A|B images side by side "
        f"(the authors' aligned layout), or A/{split}/ and B/{split}/ with files of "
        f"the same names. Found folders: {found}.{hint}"
    )
