"""Finding unusable image files before training (`tfcyclegan check-data`).

`check_images` opens every file once, in threads, and returns an
`ImageReport`: the good files with their sizes, a `BadImage` (path and reason)
for every file that cannot be used, and the images small enough to be
enlarged. `check_pairs` does the same for paired data (`PairReport`), and
also finds what makes a pair unusable though its files are fine: an A|B image
of odd width, a file without a partner, A and B that come out of the resize
in different sizes. `format_report` makes either printable.
"""

import concurrent.futures
import dataclasses
import logging
import os
import sys

from tfcyclegan.config import DataConfig
from tfcyclegan.data import decoding, geometry, sources

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class BadImage:
    """A file that cannot be used, and why.

    Args:
        path: the file.
        reason: what is wrong, for people ("truncated or corrupt: ...").
    """

    path: str
    reason: str


@dataclasses.dataclass(frozen=True)
class ImageReport:
    """What `check_images` found.

    Args:
        good: paths of the readable images, in the order given.
        sizes: `(width, height)` of each good image after EXIF orientation,
            aligned with `good`.
        bad: a `BadImage` for every file that cannot be used.
        enlarged: good images smaller than `crop_size` on their short side,
            which the pipeline enlarges.
        crop_size: the crop size `enlarged` was judged against.
    """

    good: tuple
    sizes: tuple
    bad: tuple
    enlarged: tuple = ()
    crop_size: int = 0

    # How `format_report` words it: "Checked 5 image files: 4 readable, 1 bad."
    unit = "image file"
    good_word = "readable"
    bad_word = "unreadable"
    # ... and `accept`: (bad ones, enlarged ones), the error when none is good, the list's title.
    items = ("file(s)", "image(s)")
    nothing_good = "readable images: all {} files are bad"
    bad_title = "unreadable files"

    @property
    def ok(self):
        """True when every file is a usable image."""
        return not self.bad

    @property
    def num_checked(self):
        return len(self.good) + len(self.bad)


def _check_one(path, config, decode):
    """Returns (width, height) of a good image, or a BadImage."""
    extension = os.path.splitext(path)[1].lower()
    try:
        with open(path, "rb") as f:
            # The size from the header: a decoded draft would be smaller.
            image = decoding.open_image(f, config.max_pixels, extension)
            size = decoding.oriented_size(image)
            if decode:
                f.seek(0)
                decoding.decode(
                    f, config.channels, config.max_pixels, extension, draft=True
                )
            return size
    except decoding.BadImageError as error:
        return BadImage(path, error.reason)
    except OSError as error:
        return BadImage(path, f"cannot read the file: {error.strerror or error}")


def check_images(paths, config=None, *, decode=True, workers=None, progress=False):
    """Opens every image once and reports each one that cannot be used.

    Finds empty files, files that are not images (e.g. text named `.jpg`),
    truncated or corrupt images, unsupported pixel formats and images over
    `config.max_pixels` (refused from the header, before decoding). Runs in
    threads: Pillow releases the GIL while decoding.

    Args:
        paths: image files, or a folder (listed with `list_images`).
        config: a `DataConfig` (for `max_pixels`, `channels`, `crop_size`);
            defaults to `DataConfig()`.
        decode: decode every image, which is what finds truncated files
            (JPEGs are decoded at reduced size, which still reads every byte).
            `False` checks headers only: much faster on large photos, and a
            truncated file then stops the pipeline later, with its path.
        workers: threads; defaults to the number of CPUs.
        progress: show a progress bar (for the command line).

    Returns:
        An `ImageReport`; `format_report(report)` makes it printable.
    """
    config = DataConfig() if config is None else config
    if isinstance(paths, (str, os.PathLike)):
        paths = sources.list_images(paths)
    paths = [os.fspath(p) for p in paths]
    workers = workers or os.cpu_count() or 1
    bar = None
    if progress:
        import keras  # Only for the progress bar; keeps `import data` light.

        # A redrawn bar on a terminal; in a log file one plain line at the end (no ANSI).
        bar = keras.utils.Progbar(len(paths), unit_name="image", verbose=1 if sys.stdout.isatty() else 2)
    results = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        for i, result in enumerate(
            pool.map(lambda p: _check_one(p, config, decode), paths), start=1
        ):
            results.append(result)
            if bar is not None and (i % 64 == 0 or i == len(paths)):
                bar.update(i)
    good, sizes, bad, enlarged = [], [], [], []
    for path, result in zip(paths, results):
        if isinstance(result, BadImage):
            bad.append(result)
            continue
        good.append(path)
        sizes.append(result)
        if geometry.is_enlarged(*result, config):
            enlarged.append(path)
    return ImageReport(
        good=tuple(good),
        sizes=tuple(sizes),
        bad=tuple(bad),
        enlarged=tuple(enlarged),
        crop_size=config.crop_size,
    )


def format_report(report, title=None, max_listed=None):
    """Printable text for an `ImageReport` or `PairReport`: counts, then every
    bad file.

    Args:
        report: from `check_images` or `check_pairs`.
        title: a first line, e.g. the domain's name.
        max_listed: list at most this many bad files (all by default).

    Returns:
        A string of lines (no trailing newline).
    """
    lines = [title] if title else []
    lines.append(
        f"Checked {report.num_checked} {report.unit}"
        f"{'s' if report.num_checked != 1 else ''}: {len(report.good)} "
        f"{report.good_word}, {len(report.bad)} bad."
    )
    listed = report.bad if max_listed is None else report.bad[:max_listed]
    lines.extend(f"  {bad.path}: {bad.reason}" for bad in listed)
    if len(listed) < len(report.bad):
        lines.append(f"  ... and {len(report.bad) - len(listed)} more")
    if report.enlarged:
        lines.append(
            f"{len(report.enlarged)} image(s) smaller than crop_size="
            f"{report.crop_size} px will be enlarged, e.g. {report.enlarged[0]}"
        )
    return "\n".join(lines)


# ---------------------------------------------------------------------------
# Paired data
# ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class PairReport(ImageReport):
    """What `check_pairs` found: an `ImageReport` whose items are pairs.

    Args:
        good: the usable pairs, `((path_a, path_b), ...)` in the source's
            order (one file twice in the aligned layout).
        sizes: `(width, height)` of each good pair's A image (in the aligned
            layout, of each half), aligned with `good`.
        bad: a `BadImage` for every pair that cannot be used, naming the file
            at fault, and for every file without a partner.
        enlarged: A images (or A|B files) of good pairs smaller than
            `crop_size`, which the pipeline enlarges.
        crop_size: the crop size `enlarged` was judged against.
    """

    unit = "pair"
    good_word = "usable"
    bad_word = "unusable"
    items = ("pair(s)", "pair(s)")
    nothing_good = "usable pairs: all {} are bad"
    bad_title = "unusable pairs"


def _odd_width(path, width, height):
    # The authors split at w2 = int(w / 2), so B would get one column more
    # than A: their resize then hides it (resize_and_crop) or it shifts B
    # against A by a fraction of a pixel. We refuse rather than guess.
    return BadImage(
        path,
        f"odd width: {width}x{height} px cannot be split into equal A|B halves "
        f"(A would be {width // 2} px wide, B {width - width // 2}); crop or pad it "
        "to an even width",
    )


def _size_mismatch(path_a, path_b, size_a, size_b, config):
    out_a = geometry.resized_size(*size_a, config)
    out_b = geometry.resized_size(*size_b, config)
    return BadImage(
        path_a,
        f"A is {size_a[0]}x{size_a[1]} px but its partner {path_b} is "
        f"{size_b[0]}x{size_b[1]} px, which preprocess={config.preprocess!r} "
        f"resizes to {out_a[0]}x{out_a[1]} and {out_b[0]}x{out_b[1]}; a pair "
        "must come out in one size: use files of one aspect ratio, or "
        "preprocess='resize_and_crop' (both resized to load_size)",
    )


def check_pairs(source, config=None, *, decode=True, workers=None, progress=False):
    """Opens every file of paired data once and reports each unusable pair.

    Finds what `check_images` finds in any of a pair's files, and what makes
    a pair unusable though its files are fine:

    - aligned layout: an image of odd width, whose halves A and B would
      differ in size;
    - folders layout: a file without a partner in the other folder, and a
      pair whose A and B come out of `config.preprocess`'s resize in
      different sizes (A 256x256 with B 512x512 is fine with
      `resize_and_crop`, which resizes both to `load_size` as the authors
      do, but not with `crop`, `scale_width` or `none`, which keep sizes or
      aspect ratios).

    Args:
        source: a `PairedSource` (or what `sources.as_paired_source` takes).
        config: a `DataConfig` (for `max_pixels`, `channels`, `crop_size`,
            `preprocess`); defaults to `DataConfig()`.
        decode: decode every image (finds truncated files); `False` reads
            headers only.
        workers: threads; defaults to the number of CPUs.
        progress: show a progress bar (for the command line).

    Returns:
        A `PairReport`; `format_report(report)` makes it printable.
    """
    config = DataConfig() if config is None else config
    source = sources.as_paired_source(source)
    files = sorted({path for pair in source.pairs for path in pair})
    report = check_images(files, config, decode=decode, workers=workers, progress=progress)
    sizes = dict(zip(report.good, report.sizes))
    reasons = {bad.path: bad.reason for bad in report.bad}
    good, good_sizes, bad, enlarged = [], [], [], []
    for path_a, path_b in source.pairs:
        if source.layout == "aligned":  # One A|B image: path_a == path_b.
            if path_a in reasons:
                bad.append(BadImage(path_a, reasons[path_a]))
                continue
            width, height = sizes[path_a]
            if width % 2:
                bad.append(_odd_width(path_a, width, height))
                continue
            size = (width // 2, height)
        else:
            if path_a in reasons or path_b in reasons:
                at_fault = path_a if path_a in reasons else path_b
                partner = path_b if at_fault == path_a else path_a
                reason = reasons[at_fault] + f" (pair of {partner})"
                if path_a in reasons and path_b in reasons:
                    reason = f"{reasons[path_a]}; its partner {path_b} too: {reasons[path_b]}"
                bad.append(BadImage(at_fault, reason))
                continue
            size, size_b = sizes[path_a], sizes[path_b]
            if geometry.resized_size(*size, config) != geometry.resized_size(*size_b, config):
                bad.append(_size_mismatch(path_a, path_b, size, size_b, config))
                continue
        good.append((path_a, path_b))
        good_sizes.append(size)
        if geometry.is_enlarged(*size, config):
            enlarged.append(path_a)
    bad.extend(BadImage(path, reason) for path, reason in source.unmatched)
    return PairReport(
        good=tuple(good),
        sizes=tuple(good_sizes),
        bad=tuple(bad),
        enlarged=tuple(enlarged),
        crop_size=config.crop_size,
    )


def accept(report, title, config):
    """Stops on bad files or pairs (unless `config.skip_bad_files`); logs what is skipped.

    For the pipelines: `report` is an `ImageReport` or a `PairReport`, `title`
    what the messages call the data, e.g. "Domain A (horses/)".
    """
    bad_items, enlarged_items = report.items
    if not report.good:
        raise ValueError(
            f"{title} has no {report.nothing_good.format(len(report.bad))}.\n"
            + format_report(report, max_listed=20)
        )
    if report.bad and not config.skip_bad_files:
        raise ValueError(
            format_report(report, title=f"{title} has {report.bad_title}:")
            + "\nFix or remove them, or train without them: `tfcyclegan train --skip-bad-files` "
            "(in Python, DataConfig(skip_bad_files=True))."
        )
    if report.bad:
        logger.warning(
            "%s: skipping %d %s %s (skip_bad_files=True):\n%s",
            title,
            len(report.bad),
            report.bad_word,
            bad_items,
            "\n".join(f"  {b.path}: {b.reason}" for b in report.bad),
        )
    if report.enlarged:
        logger.warning(
            "%s: %d %s are smaller than crop_size=%d px and are enlarged (bicubic), e.g. %s",
            title,
            len(report.enlarged),
            enlarged_items,
            config.crop_size,
            report.enlarged[0],
        )

