"""The CycleGAN paper's ablation study (Table 4 / 5), on any paired dataset.

`ablate` trains each variant with the same budget (epochs, steps per epoch)
and seed, evaluates each on the dataset's test split (`tfcyclegan.evaluate`:
PSNR, SSIM, L1 to the ground truth; FID/KID when the weights are at hand)
and writes `ablation.md` (one row per variant) and `ablation.png` (input |
each variant | ground truth).

The variants are the objective's weights, not code paths:

| variant          | method   | weights                                | paper        |
|------------------|----------|----------------------------------------|--------------|
| cyclegan         | CycleGAN | (all terms)                            | CycleGAN     |
| cycle_alone      | CycleGAN | lambda_gan = 0                         | Cycle alone  |
| gan_alone        | CycleGAN | lambda_a = lambda_b = 0                | GAN alone    |
| gan_forward      | CycleGAN | lambda_b = 0                           | GAN + forward|
| gan_backward     | CycleGAN | lambda_a = 0                           | GAN + backward|
| pix2pix_l1       | pix2pix  | lambda_gan = 0                         | L1 (pix2pix) |
| pix2pix_cgan     | pix2pix  | lambda_l1 = 0                          | cGAN         |
| pix2pix_l1_cgan  | pix2pix  | (both)                                 | L1 + cGAN    |

As in the paper's Table 4, the CycleGAN variants train without the identity
term unless the base config sets one. pix2pix, trained on the pairs, is the
supervised upper bound CycleGAN is measured against.

The dataset is paired (the authors' aligned layout: `train/`, `test/` of A|B
images). CycleGAN variants see it unpaired: the A and B halves of the
training images are written once as `trainA/` and `trainB/` under the
output folder, and each domain is shuffled on its own, so no pairing
reaches them. A finished variant is not trained again: rerunning `ablate`
with the same output folder resumes unfinished ones and re-evaluates.
"""

import dataclasses
import os
import pathlib
import time

from tfcyclegan import data as data_lib
from tfcyclegan import evaluate as evaluate_lib
from tfcyclegan import fileio, imaging, methods, training
from tfcyclegan.config import Config

VARIANTS = {
    "cyclegan": ("cyclegan", {}),
    "cycle_alone": ("cyclegan", {"lambda_gan": 0.0}),
    "gan_alone": ("cyclegan", {"lambda_a": 0.0, "lambda_b": 0.0}),
    "gan_forward": ("cyclegan", {"lambda_b": 0.0}),
    "gan_backward": ("cyclegan", {"lambda_a": 0.0}),
    "pix2pix_l1": ("pix2pix", {"lambda_gan": 0.0}),
    "pix2pix_cgan": ("pix2pix", {"lambda_l1": 0.0}),
    "pix2pix_l1_cgan": ("pix2pix", {}),
    # Beyond the paper: the checkerboard-free generators and the successors (docs/quality.md).
    "cyclegan_resize_conv": ("cyclegan", {"model.upsample": "resize_conv"}),
    "cyclegan_antialias": ("cyclegan", {"model.upsample": "antialias"}),
    "cut": ("cut", {}),
    "fastcut": ("fastcut", {}),
}
"""variant -> (method, settings: TrainConfig weights, or "section.field" values)."""

DEFAULT_VARIANTS = (
    "cyclegan", "cycle_alone", "gan_alone", "gan_forward", "gan_backward", "pix2pix_l1",
    "pix2pix_l1_cgan",
)


@dataclasses.dataclass
class AblationResult:
    """What `ablate` measured: one `EvaluationReport` per variant, and the times."""

    out_dir: str
    reports: dict
    seconds: dict
    markdown: str


def variant_config(variant, base=None, settings=None):
    """The `Config` a variant trains with.

    Args:
        variant: a key of `VARIANTS`.
        base: a function `method -> Config` giving each method's starting
            config (default: `Config.for_method`, the published defaults).
        settings: {"section.field": value} applied to every variant (the
            shared budget and architecture), before the variant's weights.
    """
    if variant not in VARIANTS:
        raise ValueError(f"Unknown ablation variant. Choose from {list(VARIANTS)}. Received: {variant!r}")
    method, weights = VARIANTS[variant]
    config = (base or Config.for_method)(method)
    sections = config.to_dict()
    if "train.lambda_identity" in methods.method(method).settings:
        sections["train"]["lambda_identity"] = 0.0  # the paper's Table 4 has no identity term
    for key, value in (settings or {}).items():
        section, field = key.split(".")
        sections[section][field] = value
    sections["model"]["method"] = method
    for key, value in weights.items():
        section, field = key.split(".") if "." in key else ("train", key)
        sections[section][field] = value
    return Config.from_dict(sections)


def unpaired_view(root, out_dir):
    """trainA/ and trainB/: the A and B halves of `root`'s aligned training images.

    Written once under `out_dir` (reused when present). CycleGAN reads them as
    two unpaired domains.
    """
    view = pathlib.Path(out_dir) / "unpaired_view"
    done = view / ".complete"
    if done.exists():
        return view
    source = data_lib.resolve_pairs(data=root, split="train")
    for letter in "AB":
        (view / f"train{letter}").mkdir(parents=True, exist_ok=True)
    for path, _ in source.pairs:
        pixels = data_lib.load_image(path, channels=3)
        half = pixels.shape[1] // 2
        name = pathlib.Path(path).stem + ".png"
        fileio.write_png(view / "trainA" / name, pixels[:, :half])
        fileio.write_png(view / "trainB" / name, pixels[:, half : 2 * half])
    fileio.atomic_write(done, f"{len(source.pairs)} pairs from {root}\n")
    return view


def ablate(
    data,
    out_dir,
    variants=DEFAULT_VARIANTS,
    base=None,
    settings=None,
    fid=False,
    fid_weights=None,
    image_size=None,
    verbose=1,
    name="ablation",
):
    """Trains and evaluates each variant; writes ablation.md and ablation.png.

    Args:
        data: a paired dataset root in the authors' aligned layout (`train/`, `test/`).
        out_dir: the study's folder: runs/<variant>/, evaluation/<variant>/,
            ablation.md, ablation.png.
        variants: keys of `VARIANTS`, in table order.
        base, settings: see `variant_config` (the same budget for every variant:
            set `train.epochs`, `train.epochs_decay`, `train.steps_per_epoch`,
            `train.seed` there).
        fid, fid_weights: also compute FID/KID (see `evaluate`).
        image_size: evaluation size (default: each run's training size).
        verbose: 1 prints progress with an overall ETA; 0 is quiet.
        name: the table and figure are `name`.md and `name`.png (several
            studies can share one folder, and so their runs).

    Returns:
        An `AblationResult`.
    """
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown or not variants:
        raise ValueError(f"`variants` must be a subset of {list(VARIANTS)}. Received: {list(variants)}")
    data = os.fspath(data)
    if not data_lib.has_split(data, "train") or not data_lib.has_split(data, "test"):
        raise FileNotFoundError(
            f"The ablation needs a paired dataset with train/ and test/ (the authors' aligned "
            f"layout of A|B images). Received: {data}"
        )
    out_dir = pathlib.Path(out_dir)
    configs = {v: variant_config(v, base, settings) for v in variants}
    view = None
    if any(not config.paired for config in configs.values()):
        view = unpaired_view(data, out_dir)

    # The untouched input as the output: what a translation must beat.
    reports = {"(input)": evaluate_lib.evaluate(
        lambda images: images, data, image_size=image_size or configs[variants[0]].data.crop_size,
        fid=fid, fid_weights=fid_weights, verbose=False,
    )}
    seconds = {"(input)": 0.0}
    started = time.perf_counter()
    for index, variant in enumerate(variants):
        config = configs[variant]
        if verbose:
            print(_progress(index, variants, len(seconds) - 1, started), flush=True)
        run_dir = out_dir / "runs" / variant
        spec = training.DataSpec(data=data if config.paired else os.fspath(view))
        start = time.perf_counter()
        if _train_or_finish(config, run_dir, spec, verbose):
            fileio.atomic_write(run_dir / "train_seconds.txt", f"{time.perf_counter() - start:.1f}\n")
        seconds[variant] = float((run_dir / "train_seconds.txt").read_text()) if (
            run_dir / "train_seconds.txt").exists() else float("nan")
        reports[variant] = evaluate_lib.evaluate(
            run_dir, data, out_dir=out_dir / "evaluation" / variant, image_size=image_size,
            fid=fid, fid_weights=fid_weights, verbose=False,
        )
    markdown = ablation_table(reports, seconds, configs)
    fileio.atomic_write(out_dir / f"{name}.md", markdown)
    fileio.write_png(out_dir / f"{name}.png", comparison_figure(out_dir, variants, data, image_size))
    if verbose:
        print(markdown)
    return AblationResult(os.fspath(out_dir), reports, seconds, markdown)


def _progress(index, variants, done, started):
    line = f"[{index + 1}/{len(variants)}] training {variants[index]}"
    if done:
        elapsed = time.perf_counter() - started
        # CycleGAN steps cost about twice pix2pix's; the mean so far is a fair guess.
        remaining = elapsed / done * (len(variants) - done)
        line += f" (elapsed {elapsed / 60:.1f} min, about {remaining / 60:.1f} min to go)"
    return line


def _train_or_finish(config, run_dir, spec, verbose):
    """Trains the variant, or finishes it; False when it was already done."""
    resume = (run_dir / training.CONFIG_FILE).exists()
    if resume:
        saved = training.load_run_config(run_dir)
        if saved.diff(config):
            raise ValueError(
                f"{run_dir} was trained with other settings than this study's; use another "
                "output folder. Differences (saved -> requested):\n  " + "\n  ".join(saved.diff(config))
            )
        if (run_dir / training.MODEL_FILE).exists() and not _unfinished(run_dir, config):
            return False
    training.train(config, run_dir, data_spec=spec, resume=resume, verbose=2 if verbose else 0)
    return True


def _unfinished(run_dir, config):
    import tensorflow as tf

    latest = tf.train.latest_checkpoint(os.fspath(pathlib.Path(run_dir) / "checkpoints"))
    if latest is None:
        return True
    steps = config.train.steps_per_epoch
    if steps is None:
        return False  # finished runs write model.keras; epochs-based budgets need no check
    return int(latest.rsplit("-", 1)[1]) < config.train.total_epochs * steps


def ablation_table(reports, seconds, configs):
    """ablation.md: one row per variant, the paper's Table 4 layout.

    The first row, "(input)", scores the untouched input as the output.
    """
    first = next(iter(reports.values()))
    columns = list(first.row())
    lines = [
        "| variant | method | " + " | ".join(columns) + " | train s |",
        "|---|---|" + "---|" * len(columns) + "---|",
    ]
    for variant, report in reports.items():
        cells = report.row()
        method = configs[variant].model.method if variant in configs else "-"
        lines.append(
            f"| {variant} | {method} | "
            + " | ".join(cells[c] for c in columns)
            + f" | {seconds[variant]:.0f} |"
        )
    notes = [
        "",
        f"Test split: {first.count} images of {first.data['root']} ({first.data['form']}), "
        f"{first.image_size}x{first.image_size}, direction {first.direction}. PSNR/SSIM on 8-bit "
        "pixels, L1 on [0, 1]; mean ± std over the test images.",
    ]
    if first.fid_note:
        notes.append(f"FID/KID: {first.fid_note}")
    return "\n".join(lines + notes) + "\n"


def comparison_figure(out_dir, variants, data, image_size=None, count=4):
    """uint8 picture: `count` test images as rows; input | each variant | ground truth."""
    runs = pathlib.Path(out_dir) / "runs"
    config = training.load_run_config(runs / variants[0])
    size = image_size or config.data.crop_size
    split = evaluate_lib.load_test_split(data, "a2b", size, max_images=count)
    columns = [split.inputs]
    for variant in variants:
        model = training.load_run_model(runs / variant)
        columns.append(model.translate(split.inputs, "a2b"))
    columns.append(split.targets)
    return imaging.grid(columns, ["input", *variants, "truth"])
