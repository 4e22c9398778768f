"""Finding unusable image files before training (`tfcyclegan check-data`).

`check_images` opens every file once, in threads, and returns an
`ImageReport`: the good files with their sizes, a `BadImage` (path and reason)
for every file that cannot be used, and the images small enough to be
enlarged. `format_report` makes it printable.
"""

import concurrent.futures
import dataclasses
import os

from tfcyclegan.config import DataConfig
from tfcyclegan.data import decoding, geometry, sources


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

        bar = keras.utils.Progbar(len(paths), unit_name="image")
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
    """Printable text for an `ImageReport`: counts, then every bad file.

    Args:
        report: from `check_images`.
        title: a first line, e.g. the domain's name.
        max_listed: list at most this many bad files (all by default).

    Returns:
        A string of lines (no trailing newline).
    """
    lines = [title] if title else []
    lines.append(
        f"Checked {report.num_checked} image file"
        f"{'s' if report.num_checked != 1 else ''}: {len(report.good)} readable, "
        f"{len(report.bad)} bad."
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
