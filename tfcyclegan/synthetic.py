"""Small generated datasets, so the demo runs offline from a fresh clone.

`make_demo_dataset` draws two domains of simple landscapes in the authors'
layout (`trainA/`, `trainB/`, `testA/`, `testB/`):

- A, "summer": blue sky, green hills and grass, green pines, a yellow sun;
- B, "winter": grey sky, white hills and snow, dark pines with white tops,
  a pale sun.

Both domains draw their layouts (horizon, hills, trees, sun) from the same
distribution, independently per image, so the data is unpaired and the
difference between domains is colour and surface only, never geometry: the
kind of translation CycleGAN learns in minutes on a CPU at 32-64 px, and one a
person sees at a glance in a sample grid.

`make_paired_dataset` draws paired data for pix2pix: each scene twice, from
one layout, as summer (A) and as winter (B), so x and y differ in style only
and y is (up to the sun's tint) a function of x. It writes the authors'
aligned layout (`train/`, `test/`, A|B side by side) or two folders of
matching names (`A/train/`, `B/train/`, ...).
"""

import os
import pathlib

import numpy as np
from PIL import Image, ImageDraw

from tfcyclegan.checks import check_int

SEASONS = ("summer", "winter")

# Colours per season. Each image jitters them a little so a domain is a
# distribution of colours, not one value the discriminator could memorise.
_PALETTES = {
    "summer": {
        "sky_top": (60, 120, 225),
        "sky_bottom": (150, 200, 245),
        "hill": (70, 135, 65),
        "ground": (95, 175, 70),
        "trunk": (105, 70, 40),
        "leaves": (30, 105, 45),
        "cap": None,
        "sun": (250, 215, 60),
    },
    "winter": {
        "sky_top": (115, 120, 130),
        "sky_bottom": (170, 174, 182),
        "hill": (222, 226, 234),
        "ground": (240, 242, 248),
        "trunk": (80, 65, 55),
        "leaves": (45, 75, 60),
        "cap": (245, 247, 250),
        "sun": (228, 228, 222),
    },
}

# Drawn at this multiple of the output size, then downsampled: smooth edges.
_SUPERSAMPLE = 2


def _jitter(rng, colour, brightness=12, tint=4):
    # Mostly brightness: a per-channel shift of the same size would turn
    # white snow pink or green.
    shift = rng.integers(-brightness, brightness + 1)
    return tuple(
        int(np.clip(c + shift + rng.integers(-tint, tint + 1), 0, 255)) for c in colour
    )


def draw_scene(rng, season, width, height, *, layout_rng=None):
    """Draws one landscape.

    Args:
        rng: a `numpy.random.Generator`; the colour jitter comes from it, and
            the layout too unless `layout_rng` is given.
        season: `"summer"` (domain A) or `"winter"` (domain B).
        width: image width in pixels.
        height: image height in pixels.
        layout_rng: a `numpy.random.Generator` for the layout (horizon, sun,
            hills, trees) alone: two generators in the same state draw the
            same scene in either season.

    Returns:
        A Pillow RGB image.
    """
    if season not in _PALETTES:
        raise ValueError(f"`season` must be one of {list(SEASONS)}. Received: season={season!r}")
    palette = {k: None if v is None else _jitter(rng, v) for k, v in _PALETTES[season].items()}
    # The colours are drawn first, so with one generator for both the
    # sequence of draws is the demo's, unchanged.
    rng = rng if layout_rng is None else layout_rng
    w, h = width * _SUPERSAMPLE, height * _SUPERSAMPLE

    # Sky: a vertical gradient, built with numpy (one call, not h lines).
    t = np.linspace(0.0, 1.0, h)[:, None, None]
    top = np.array(palette["sky_top"], np.float32)
    bottom = np.array(palette["sky_bottom"], np.float32)
    sky = (1 - t) * top + t * bottom
    canvas = np.broadcast_to(sky, (h, w, 3)).astype(np.uint8)
    image = Image.fromarray(canvas, "RGB")
    draw = ImageDraw.Draw(image)

    horizon = int(h * rng.uniform(0.45, 0.7))

    # Sun, somewhere in the sky.
    radius = w * rng.uniform(0.05, 0.09)
    cx = w * rng.uniform(0.1, 0.9)
    cy = horizon * rng.uniform(0.15, 0.6)
    draw.ellipse((cx - radius, cy - radius, cx + radius, cy + radius), fill=palette["sun"])

    # Rolling hills: a polygon along a sum of two sinusoids above the horizon.
    xs = np.linspace(0, w, 24)
    phase, freq = rng.uniform(0, 2 * np.pi, 2), rng.uniform(1.0, 3.0, 2)
    amplitude = h * rng.uniform(0.04, 0.12)
    ys = horizon - amplitude * (
        1.2 + 0.6 * np.sin(freq[0] * xs / w * 2 * np.pi + phase[0])
        + 0.4 * np.sin(freq[1] * xs / w * 2 * np.pi + phase[1])
    )
    draw.polygon([(0, horizon)] + list(zip(xs, ys)) + [(w, horizon)], fill=palette["hill"])

    # Ground.
    draw.rectangle((0, horizon, w, h), fill=palette["ground"])

    # Pines, far (small, high) to near (large, low) so near ones overlap.
    n_trees = int(rng.integers(2, 7))
    bases = np.sort(rng.uniform(horizon + 0.02 * h, h * 0.98, n_trees))
    for base in bases:
        depth = (base - horizon) / max(1.0, h - horizon)  # 0 far .. 1 near
        tree_h = h * (0.18 + 0.3 * depth) * rng.uniform(0.8, 1.2)
        tree_w = tree_h * rng.uniform(0.45, 0.6)
        x = w * rng.uniform(0.05, 0.95)
        trunk_w, trunk_h = tree_w * 0.15, tree_h * 0.2
        draw.rectangle((x - trunk_w / 2, base - trunk_h, x + trunk_w / 2, base), fill=palette["trunk"])
        top_y = base - tree_h
        left, right = x - tree_w / 2, x + tree_w / 2
        crown_base = base - trunk_h
        draw.polygon([(x, top_y), (left, crown_base), (right, crown_base)], fill=palette["leaves"])
        if palette["cap"] is not None:
            # Snow on the upper third of the crown.
            frac = 0.38
            cap_y = top_y + frac * (crown_base - top_y)
            half = frac * tree_w / 2
            draw.polygon([(x, top_y), (x - half, cap_y), (x + half, cap_y)], fill=palette["cap"])

    return image.resize((width, height), Image.Resampling.BOX)


def _check_arguments(n_train, n_test, size, seed):
    check_int("n_train", n_train, 1)
    check_int("n_test", n_test, 0)
    check_int("size", size, 8)
    check_int("seed", seed, 0)


def make_demo_dataset(root, n_train=200, n_test=20, size=64, seed=0, overwrite=False):
    """Writes the summer (A) / winter (B) demo dataset as PNGs.

    Files are `root/{trainA,trainB,testA,testB}/{summer,winter}_NNNN.png`. Each
    split and domain has its own random stream derived from `seed`, so the
    test images do not change when `n_train` does, and the same arguments give
    the same files.

    Args:
        root: folder to write into (created if needed).
        n_train: images per domain in trainA/ and trainB/.
        n_test: images per domain in testA/ and testB/.
        size: width and height in pixels (32-64 trains in minutes on a CPU).
        seed: the random seed.
        overwrite: replace the PNGs of an earlier demo dataset in `root`;
            otherwise a non-empty domain folder is an error.

    Returns:
        `root` as a `pathlib.Path`.
    """
    _check_arguments(n_train, n_test, size, seed)
    root = pathlib.Path(root)
    jobs = []
    for split_index, (split, count) in enumerate((("train", n_train), ("test", n_test))):
        for domain_index, (letter, season) in enumerate(zip("AB", SEASONS)):
            folder = root / f"{split}{letter}"
            if folder.is_dir() and any(folder.iterdir()):
                if not overwrite:
                    raise FileExistsError(
                        f"{folder} is not empty. Pass overwrite=True to replace an "
                        "earlier demo dataset, or choose another root."
                    )
                for old in folder.glob(f"{season}_*.png"):
                    old.unlink()
            jobs.append((folder, season, count, [seed, split_index, domain_index]))
    for folder, season, count, stream in jobs:
        folder.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(stream)
        for i in range(count):
            image = draw_scene(rng, season, size, size)
            # Light compression: these files are small and written often.
            image.save(os.path.join(folder, f"{season}_{i:04d}.png"), compress_level=1)
    return root


PAIRED_LAYOUTS = ("aligned", "folders")


def draw_pair(seed, width, height):
    """One scene as summer (A) and as winter (B): the same layout, two styles.

    Args:
        seed: anything `numpy.random.default_rng` takes; the same seed gives
            the same pair.
        width: image width in pixels.
        height: image height in pixels.

    Returns:
        `(summer, winter)` Pillow RGB images.
    """
    seed = list(np.atleast_1d(seed))
    # One layout stream for both images: the same horizon, hills, sun and
    # trees. One colour stream too, so both get the same brightness jitter and
    # y stays (up to the sun's tint) a function of x, which pix2pix can learn.
    return tuple(
        draw_scene(
            np.random.default_rng(seed + [1]),
            season,
            width,
            height,
            layout_rng=np.random.default_rng(seed + [0]),
        )
        for season in SEASONS
    )


def make_paired_dataset(
    root, n_train=200, n_test=20, size=64, seed=0, layout="aligned", overwrite=False
):
    """Writes paired summer (A) / winter (B) scenes for pix2pix, as PNGs.

    Each pair is one scene drawn twice (`draw_pair`): the same geometry in
    both styles. Layouts:

    - `"aligned"`: the authors' aligned layout, `root/{train,test}/scene_NNNN.png`,
      each `2 * size` wide with A (summer) left and B (winter) right;
    - `"folders"`: `root/{A,B}/{train,test}/scene_NNNN.png`, files of the same
      name in the two folders (the input of the authors' `combine_A_and_B.py`).

    Both load with `data.resolve_pairs(data=root, split=...)`. Every pair has
    its own random stream derived from `seed`, its split and its number, so
    the test pairs do not change when `n_train` does, and the same arguments
    give the same files.

    Args:
        root: folder to write into (created if needed).
        n_train: pairs in the train split.
        n_test: pairs in the test split (0: no test split).
        size: width and height of A and of B in pixels (32-64 trains in
            minutes on a CPU).
        seed: the random seed.
        layout: `"aligned"` or `"folders"`.
        overwrite: replace the PNGs of an earlier paired dataset in `root`;
            otherwise a non-empty split folder is an error.

    Returns:
        `root` as a `pathlib.Path`.
    """
    _check_arguments(n_train, n_test, size, seed)
    if layout not in PAIRED_LAYOUTS:
        raise ValueError(
            f"`layout` must be one of {list(PAIRED_LAYOUTS)}. Received: layout={layout!r}"
        )
    root = pathlib.Path(root)
    splits = [(index, split, count) for index, (split, count)
              in enumerate((("train", n_train), ("test", n_test))) if count]
    folders = {
        split: [root / split] if layout == "aligned" else [root / "A" / split, root / "B" / split]
        for _, split, _ in splits
    }
    for folder in (f for fs in folders.values() for f in fs):
        if folder.is_dir() and any(folder.iterdir()):
            if not overwrite:
                raise FileExistsError(
                    f"{folder} is not empty. Pass overwrite=True to replace an "
                    "earlier paired dataset, or choose another root."
                )
            for old in folder.glob("scene_*.png"):
                old.unlink()
    for split_index, split, count in splits:
        for folder in folders[split]:
            folder.mkdir(parents=True, exist_ok=True)
        for i in range(count):
            summer, winter = draw_pair([seed, split_index, i], size, size)
            name = f"scene_{i:04d}.png"
            if layout == "aligned":
                pair = Image.new("RGB", (2 * size, size))
                pair.paste(summer, (0, 0))
                pair.paste(winter, (size, 0))
                # Light compression: these files are small and written often.
                pair.save(folders[split][0] / name, compress_level=1)
            else:
                summer.save(folders[split][0] / name, compress_level=1)
                winter.save(folders[split][1] / name, compress_level=1)
    return root
