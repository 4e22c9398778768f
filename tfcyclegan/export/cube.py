"""3D LUTs: a per-pixel generator as a `.cube` file (Adobe / DaVinci Resolve).

A colour look that changes each pixel by its colour alone is a function from
RGB to RGB, and colourists carry such functions as 3D LUTs: the function
sampled on a regular grid of colours, interpolated (trilinearly, or
tetrahedrally) in between. `ColorGenerator` computes only such functions, so
sampling it once on the grid gives a file that Resolve, Premiere, Photoshop
and ffmpeg (`lut3d`) apply without tfcyclegan.

The `.cube` format (Adobe's "Cube LUT Specification 1.0"), as written here:

    TITLE "cyclegan_a2b"
    LUT_3D_SIZE 33
    DOMAIN_MIN 0.0 0.0 0.0
    DOMAIN_MAX 1.0 1.0 1.0
    0.000000 0.000000 0.000000      <- output R G B of input (0, 0, 0)
    0.031250 0.000000 0.000000      <- of input (1/32, 0, 0): red changes fastest,
    ...                                then green, then blue

Input and output colours are in [0, 1] (the generator's [-1, 1] mapped
linearly); 33 points per axis is the size Resolve and Premiere export.
In numpy, the table is `(size, size, size, 3)` indexed `[b, g, r]`: the
file's row order is then the table's C order.
"""

import io
import pathlib

import numpy as np

from tfcyclegan.fileio import atomic_write
from tfcyclegan.networks import ColorGenerator

LUT_SIZE = 33
"""Points per axis: 33 (steps of 1/32) is what Resolve and Premiere write, and small (35,937 rows)."""


def check_per_pixel(generator):
    """Refuses a generator a LUT cannot carry: anything but a 3-channel `ColorGenerator`."""
    if not isinstance(generator, ColorGenerator):
        raise ValueError(
            "A 3D LUT can only carry a per-pixel look: one output colour for each input colour, "
            f"whatever the neighbouring pixels. {type(generator).__name__} {generator.name!r} looks "
            "at neighbouring pixels, so no LUT reproduces it. Train with the colour generator "
            "(generator='color', tfcyclegan train --netG color) to export a .cube."
        )
    channels = (generator.input_channels, generator.output_channels)
    if channels != (3, 3):
        raise ValueError(
            "A .cube LUT maps RGB to RGB. Received: a ColorGenerator with "
            f"(input, output) channels {channels}"
        )


def carries_lut(generator):
    """Whether a `.cube` can carry `generator` (`check_per_pixel` says why not)."""
    try:
        check_per_pixel(generator)
    except ValueError:
        return False
    return True


def lut_grid(size=LUT_SIZE):
    """The LUT's input colours in [0, 1], `(size, size, size, 3)` RGB indexed `[b, g, r]`."""
    steps = np.arange(size, dtype=np.float64) / (size - 1)
    b, g, r = np.meshgrid(steps, steps, steps, indexing="ij")
    return np.stack([r, g, b], axis=-1)


def sample_lut(generator, size=LUT_SIZE):
    """The table of `generator` (a `ColorGenerator`): its output at every grid colour.

    The grid runs through the generator once, as one image of `size` rows and
    `size**2` columns (33 x 1089 pixels): a per-pixel network gives every
    pixel the same function wherever it sits.

    Returns:
        float64 `(size, size, size, 3)` RGB in [0, 1], indexed `[b, g, r]`.
    """
    check_per_pixel(generator)
    if isinstance(size, bool) or not isinstance(size, int) or not 2 <= size <= 256:
        raise ValueError(f"`size` must be an integer from 2 to 256 (33 is usual). Received: size={size!r}")
    grid = lut_grid(size).reshape(1, size, size * size, 3)
    # Grid values i / (size - 1) map to [-1, 1] exactly in float32 for size 33 (steps of 1/16).
    images = (grid * 2.0 - 1.0).astype(np.float32)
    outputs = np.asarray(generator(images, training=False), np.float64)
    return np.clip((outputs + 1.0) / 2.0, 0.0, 1.0).reshape(size, size, size, 3)


def cube_text(table, title):
    """The `.cube` file of `table` (`(n, n, n, 3)` indexed `[b, g, r]`, values in [0, 1])."""
    table = np.asarray(table, np.float64)
    size = table.shape[0]
    if table.ndim != 4 or table.shape != (size, size, size, 3):
        raise ValueError(f"A 3D LUT table is (n, n, n, 3). Received: shape {table.shape}")
    # A title is one quoted line: quotes and line breaks would end it early.
    title = " ".join(str(title).replace('"', "'").split())
    rows = io.StringIO()
    np.savetxt(rows, table.reshape(-1, 3), fmt="%.6f")
    return (
        f'TITLE "{title}"\n'
        f"LUT_3D_SIZE {size}\n"
        "DOMAIN_MIN 0.0 0.0 0.0\n"
        "DOMAIN_MAX 1.0 1.0 1.0\n"
        + rows.getvalue()
    )


def export_cube(generator, path, title=None, size=LUT_SIZE):
    """Writes `generator`'s colour look as a `.cube` 3D LUT at `path` (atomically).

    Args:
        generator: a `ColorGenerator` with 3 channels (anything else is refused:
            a LUT only carries per-pixel looks).
        path: the file to write.
        title: the file's TITLE (default: the file name without `.cube`).
        size: points per axis (33).

    Returns:
        The table written: `(size, size, size, 3)` RGB in [0, 1], indexed `[b, g, r]`.
    """
    path = pathlib.Path(path)
    table = sample_lut(generator, size)
    atomic_write(path, cube_text(table, path.stem if title is None else title))
    return table


# The default domain in Adobe's keywords, and in Resolve's older one.
_DOMAIN = {"DOMAIN_MIN": [0.0] * 3, "DOMAIN_MAX": [1.0] * 3, "LUT_3D_INPUT_RANGE": [0.0, 1.0]}


def read_cube(path):
    """The table of a 3D `.cube` file: `(n, n, n, 3)` float64 RGB, indexed `[b, g, r]`.

    Reads what `export_cube` writes and what colour tools write: comments
    (`#`), TITLE, LUT_3D_SIZE, DOMAIN_MIN / DOMAIN_MAX (or Resolve's
    LUT_3D_INPUT_RANGE; only the default [0, 1] domain: the table alone
    would not say another), then n**3 rows with red changing fastest.

    Raises:
        ValueError: not a 3D LUT (e.g. a 1D one), another domain, or a row count
            or row that does not fit; the message names the file and line.
    """
    path = pathlib.Path(path)
    size, rows = None, []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            words = line.split("#", 1)[0].split()
            if not words:
                continue
            keyword = words[0].upper()
            try:
                if keyword == "TITLE":
                    continue
                if keyword == "LUT_3D_SIZE":
                    size = int(words[1])
                elif keyword in _DOMAIN:
                    if [float(w) for w in words[1:]] != _DOMAIN[keyword]:
                        raise ValueError(f"only the domain [0, 1] is read, not {' '.join(words[1:])}")
                elif keyword == "LUT_1D_SIZE":
                    raise ValueError("a 1D LUT (LUT_1D_SIZE), not a 3D one")
                elif keyword[0].isalpha():
                    raise ValueError(f"unknown keyword {words[0]}")
                else:
                    if len(words) != 3:
                        raise ValueError(f"a row has 3 numbers, this one {len(words)}")
                    rows.append([float(w) for w in words])
            except (ValueError, IndexError) as error:
                raise ValueError(f"{path}, line {number}: {error}. Received: {line.strip()!r}") from None
    if size is None or len(rows) != size**3:
        raise ValueError(
            f"{path}: a 3D LUT has LUT_3D_SIZE n and n**3 rows. Received: "
            f"LUT_3D_SIZE {size}, {len(rows)} rows"
        )
    return np.asarray(rows, np.float64).reshape(size, size, size, 3)


def apply_lut(table, pixels):
    """`pixels` (..., 3) RGB in [0, 1] through `table` (indexed `[b, g, r]`), trilinearly.

    What a LUT gives between its grid points, as Resolve's and ffmpeg's
    trilinear interpolation; `export` compares it with the generator.
    """
    table = np.asarray(table, np.float64)
    size = table.shape[0]
    position = np.clip(np.asarray(pixels, np.float64), 0.0, 1.0) * (size - 1)
    low = np.minimum(np.floor(position).astype(np.int64), size - 2)
    weight = position - low  # (..., 3): r, g, b
    result = np.zeros(position.shape, np.float64)
    for corner in np.ndindex(2, 2, 2):  # (dr, dg, db)
        share = np.prod([w if c else 1.0 - w for c, w in zip(corner, np.moveaxis(weight, -1, 0))], axis=0)
        r, g, b = (low[..., i] + corner[i] for i in range(3))
        result += share[..., None] * table[b, g, r]
    return result

