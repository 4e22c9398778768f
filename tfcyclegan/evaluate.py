"""How good is a translation: FID / KID on the test split, and pixel metrics with ground truth.

`evaluate` translates a dataset's test split with any model form `translate`
accepts (run folder, `.keras`, SavedModel, `.tflite`, so that exported and
quantized artifacts are measured, not only the Keras model) and reports:

- **FID and KID** between the translations and the real test images of the
  target domain, with pytorch-fid's Inception network and weights
  (`tfcyclegan.fid`), as the field's papers compute them. They need the
  weights file (downloaded once, or `fid_weights=PATH`). By default they are
  computed when the weights can be had and skipped, with a note saying why
  and how to add them, when they cannot (offline); `fid=True` requires them,
  `fid=False` skips them. With few test images FID is biased upwards (its
  covariance is rank-deficient below 2048 images): compare FIDs over the same
  images only.
- with paired ground truth (the authors' aligned `test/` folder, or `testA/`
  and `testB/` whose files pair by name): **PSNR, SSIM and L1** per image and
  their mean and standard deviation, beside those of the untouched input
  against the same truth: a translation that scores below its own input
  makes the images worse, and the summary says so.

It writes `evaluation.json`, `evaluation.md` (a table), `per_image.csv` and
`cases.png`: the worst and the best translations (input | output | truth),
the failure cases a person wants to see first.

Test images are resized to `image_size` x `image_size` (bicubic, as the
training pipeline's evaluation mode), by default the size the model was
trained on.
"""

import csv
import dataclasses
import io
import json
import math
import os
import pathlib
import time

import numpy as np
import tensorflow as tf

from tfcyclegan import data as data_lib
from tfcyclegan import fileio, imaging, quality
from tfcyclegan.checks import check_int
from tfcyclegan.config import DataConfig, parse_direction
from tfcyclegan.export.loading import training_size
from tfcyclegan.export.runtime import load_translator

REPORT_NAME = "evaluation.json"
DEFAULT_IMAGE_SIZE = 256
CASES = 4
"""Worst and best translations shown in `cases.png`."""
_PAIRED_COLUMNS = (("psnr_db", "PSNR dB", 2), ("ssim", "SSIM", 3), ("l1", "L1", 4))
"""Per metric of `paired_metrics`: its column and digits in tables."""
_INPUT_MUST_BEAT = (("psnr_db", "PSNR", 2, " dB"), ("ssim", "SSIM", 3, ""))
"""The metrics (higher is better) whose mean below the untouched inputs' sets `worse_than_input`."""


@dataclasses.dataclass
class EvaluationReport:
    """What `evaluate` measured. `to_dict()` is `evaluation.json`.

    Attributes:
        model: what was evaluated (path, and the runtime: keras, saved_model, tflite).
        data: the dataset root and the test split's form ("aligned", "folders" or "unpaired").
        direction: "a2b" or "b2a".
        count: test images translated.
        image_size: their height and width.
        paired: {"psnr_db", "ssim", "l1"} -> {"mean", "std"}, or None without ground truth.
        baseline: the same for the untouched inputs against the truth (what
            a model that changes nothing scores), or None without ground
            truth or when inputs and truth differ in shape (1 -> 3 channels).
        worse_than_input: True when the translations' mean PSNR or SSIM is
            below the untouched inputs' (`warning()` says by how much), or
            None without a baseline.
        fid: FID against the real target images, or None.
        kid: {"mean", "std"} (KID x 1000 is what papers print), or None.
        checkerboard: `quality.checkerboard_score` of the outputs relative to
            the real target images (1: as much period-2 texture as real images;
            a transposed-convolution checkerboard scores well above), or None
            when it cannot be computed (odd sizes, real images without any).
        fid_note: why FID/KID are missing, when they are.
        per_image: [{"name", "psnr_db", "ssim", "l1"}] with ground truth.
        seconds: time taken.
    """

    model: dict
    data: dict
    direction: str
    count: int
    image_size: int
    paired: dict = None
    baseline: dict = None
    worse_than_input: bool = None
    fid: float = None
    kid: dict = None
    checkerboard: float = None
    fid_note: str = None
    per_image: list = dataclasses.field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self):
        return dataclasses.asdict(self)

    def row(self, baseline=False):
        """The headline numbers as {column: text}, for tables of several runs.

        `baseline=True`: the untouched inputs' numbers in the same columns
        (the paired ones; "-" for the rest, and for all without a baseline).
        """
        paired = (self.baseline if baseline else self.paired) or {}
        cells = {}
        for name, label, digits in _PAIRED_COLUMNS:
            stats = paired.get(name)
            cells[label] = "-" if stats is None else f"{stats['mean']:.{digits}f} ± {stats['std']:.{digits}f}"
        if baseline:
            return {**cells, "FID": "-", "KID x1000": "-", "checkerboard": "-"}
        cells["FID"] = "-" if self.fid is None else f"{self.fid:.2f}"
        cells["KID x1000"] = (
            "-" if self.kid is None else f"{1000 * self.kid['mean']:.2f} ± {1000 * self.kid['std']:.2f}"
        )
        cells["checkerboard"] = "-" if self.checkerboard is None else f"{self.checkerboard:.2f}"
        return cells

    def warning(self):
        """One line when the translations score below the untouched inputs, else None."""
        if not self.worse_than_input:
            return None
        below = []
        for name, label, digits, unit in _INPUT_MUST_BEAT:
            ours, inputs = self.paired[name]["mean"], self.baseline[name]["mean"]
            if ours < inputs:
                below.append(f"{label} {ours:.{digits}f}{unit} < {inputs:.{digits}f}{unit}")
        return (
            f"warning: the translations score below the untouched inputs ({'; '.join(below)}): "
            "the model makes these images worse"
        )

    def to_markdown(self):
        cells = self.row()
        rows = [("translated", cells)]
        if self.baseline:
            rows.append(("untouched input", self.row(baseline=True)))
        lines = [
            f"# Evaluation of {self.model['path']} ({self.model['kind']}), {self.direction}",
            "",
            f"{self.count} test images of {self.data['root']} ({self.data['form']}), "
            f"{self.image_size}x{self.image_size}.",
            "",
            "| images | " + " | ".join(cells) + " |",
            "|---|" + "---|" * len(cells),
            *("| " + " | ".join([label, *row.values()]) + " |" for label, row in rows),
        ]
        if self.warning():
            lines += ["", f"**{self.warning()}**"]
        if self.fid_note:
            lines += ["", f"FID/KID: {self.fid_note}"]
        if self.checkerboard is not None:
            lines += ["", "checkerboard: period-2 spectral energy of the outputs relative to the real "
                          "target images' (1 = as much as real images; a checkerboard artifact is well above 1)."]
        if self.paired:
            lines += [
                "",
                "PSNR and SSIM on 8-bit pixels (SSIM: 11x11 Gaussian window, sigma 1.5); "
                "L1: mean absolute pixel difference on a [0, 1] scale.",
            ]
        if self.baseline:
            lines += ["", "untouched input: the test inputs themselves scored against the truth, "
                          "what a model that changes nothing would score."]
        return "\n".join(lines) + "\n"

    def summary(self):
        """What `evaluate` prints: the numbers (the inputs' beside them), the warning, the FID note."""
        inputs = {
            label: f" (input {self.baseline[name]['mean']:.{digits}f})" for name, label, digits in _PAIRED_COLUMNS
        } if self.baseline else {}
        numbers = [f"{label} {text}{inputs.get(label, '')}" for label, text in self.row().items() if text != "-"]
        lines = [f"{self.count} images, {self.direction}: " + ", ".join(numbers)]
        lines += [line for line in (self.warning(), self.fid_note and f"FID/KID: {self.fid_note}") if line]
        return "\n".join(lines)


# --- Metrics -----------------------------------------------------------------


def paired_metrics(outputs, targets):
    """PSNR (dB), SSIM and L1 of each output against its target, on 8-bit pixels.

    Both float32 NHWC in [-1, 1]. Outputs are rounded to pixels first, as a
    saved translation would be. PSNR and SSIM are those of 0-255 images
    (`tf.image.psnr` / `tf.image.ssim`: 11x11 Gaussian window, sigma 1.5,
    k1 0.01, k2 0.03, averaged over channels); L1 is the mean absolute
    difference on a [0, 1] scale.

    Returns:
        {"psnr_db": array (N,), "ssim": array (N,), "l1": array (N,)}.
    """
    outputs = tf.cast(imaging.to_uint8(outputs), tf.float32)
    targets = tf.cast(imaging.to_uint8(targets), tf.float32)
    psnr = tf.image.psnr(outputs, targets, max_val=255.0).numpy().astype(np.float64)
    # Identical images have infinite PSNR; JSON has no infinity, so cap at
    # the PSNR of one level of error in one pixel of a 256x256 image.
    psnr = np.minimum(psnr, 10 * math.log10(255.0**2 * 256 * 256))
    ssim = tf.image.ssim(outputs, targets, max_val=255.0).numpy().astype(np.float64)
    l1 = tf.reduce_mean(tf.abs(outputs - targets), axis=[1, 2, 3]).numpy() / 255.0
    return {"psnr_db": psnr, "ssim": ssim, "l1": l1.astype(np.float64)}


def _mean_std(values):
    values = np.asarray(values, np.float64)
    return {"mean": float(values.mean()), "std": float(values.std())}


# --- The test split --------------------------------------------------------------


@dataclasses.dataclass
class TestSplit:
    """The images `evaluate` translates and compares with.

    Attributes:
        form: "aligned" (root/test of A|B images), "folders" (testA/ and
            testB/ pairing by name) or "unpaired" (testA/, testB/).
        names: one name per input image.
        inputs: float32 (N, S, S, C) in [-1, 1].
        targets: the ground truth of each input, or None (unpaired).
        reals: real images of the target domain (for FID/KID).
    """

    form: str
    names: list
    inputs: np.ndarray
    targets: np.ndarray
    reals: np.ndarray


def load_test_split(root, direction="a2b", image_size=DEFAULT_IMAGE_SIZE, channels=(3, 3),
                    max_images=None):
    """The test split of `root` resized to `image_size`, as `evaluate` uses it.

    `root` is a dataset root: the authors' aligned layout (`test/`) or their
    unpaired one (`testA/`, `testB/`; paired when every file has a partner of
    the same name in the other folder).

    Raises:
        FileNotFoundError: `root` has no test split.
    """
    if max_images is not None:
        check_int("max_images", max_images, 1)
    direction = parse_direction(direction)
    root = os.fspath(root)
    config = DataConfig(
        preprocess="resize_and_crop", load_size=image_size, crop_size=image_size,
        flip=False, batch_size=1,
    )
    a_channels, b_channels = channels
    if direction == "b2a":
        a_channels, b_channels = b_channels, a_channels
    if data_lib.has_split(root, "test"):
        source = data_lib.resolve_pairs(data=root, split="test")
        return _paired_split("aligned", source, config, direction, channels, max_images)
    folders = [os.path.join(root, f"test{letter}") for letter in "AB"]
    if not all(os.path.isdir(folder) for folder in folders):
        raise FileNotFoundError(
            f"{root} has no test split: expected test/ (aligned A|B images, the pix2pix "
            "layout) or testA/ and testB/ (the CycleGAN layout). Evaluation measures "
            "held-out images; put some there."
        )
    pairs = data_lib.resolve_pairs(domain_a=folders[0], domain_b=folders[1])
    if pairs.pairs and not pairs.unmatched:
        return _paired_split("folders", pairs, config, direction, channels, max_images)
    if direction == "b2a":
        folders = folders[::-1]
    inputs_paths = data_lib.list_images(folders[0])[:max_images]
    reals_paths = data_lib.list_images(folders[1])[:max_images]
    return TestSplit(
        form="unpaired",
        names=[os.path.relpath(p, folders[0]) for p in inputs_paths],
        inputs=data_lib.load_eval_images(inputs_paths, dataclasses.replace(config, channels=a_channels)),
        targets=None,
        reals=data_lib.load_eval_images(reals_paths, dataclasses.replace(config, channels=b_channels)),
    )


def _paired_split(form, source, config, direction, channels, max_images):
    data = data_lib.paired_dataset(
        source, config, training=False, direction="AtoB" if direction == "a2b" else "BtoA",
        channels=channels if direction == "a2b" else channels[::-1],
    )
    inputs, targets = [], []
    for x, y in data.dataset:
        inputs.append(x.numpy())
        targets.append(y.numpy())
        if max_images is not None and sum(len(b) for b in inputs) >= max_images:
            break
    inputs = np.concatenate(inputs)[:max_images]
    targets = np.concatenate(targets)[:max_images]
    names = [os.path.basename(a) for a, _ in source.pairs][: len(inputs)]
    return TestSplit(form=form, names=names, inputs=inputs, targets=targets, reals=targets)


# --- evaluate ------------------------------------------------------------------


def evaluate(
    model,
    data,
    direction="a2b",
    *,
    out_dir=None,
    image_size=None,
    fid=None,
    fid_weights=None,
    kid_subsets=100,
    kid_subset_size=1000,
    max_images=None,
    batch_size=8,
    verbose=True,
    checkpoint=None,
    epoch=None,
):
    """Translates `data`'s test split with `model` and measures the result.

    Args:
        model: a run folder, `.keras`, SavedModel folder, export folder or
            `.tflite` file, or a loaded translator (`load_translator`).
        data: a dataset root with a test split (`test/` aligned, or `testA/`
            and `testB/`), or a `TestSplit`.
        direction: "a2b" (G: test A -> compared with B) or "b2a".
        out_dir: where to write evaluation.json, evaluation.md,
            per_image.csv and cases.png (None: nothing is written).
        image_size: test images are resized to this; default the model's
            training size when it can be told, else 256.
        fid: FID and KID (they need the FID Inception weights). None: when
            the weights can be had (given, cached, or downloaded now), else
            skipped with a `fid_note` saying why and how to add them; True:
            required (no weights is an error); False: not computed.
            `fid_weights` given counts as asking for them (an unreadable
            file is an error).
        fid_weights: the weights file; None downloads pytorch-fid's once.
        kid_subsets, kid_subset_size: KID's subsets (capped at the image count).
        max_images: evaluate at most this many test images.
        batch_size: images per translation call.
        verbose: print the summary.
        checkpoint: for a run folder, a checkpoint name (`ckpt-1200`) instead
            of its newest state.
        epoch: for a run folder, the checkpoint of this epoch.

    Returns:
        An `EvaluationReport`.
    """
    start = time.perf_counter()
    direction = parse_direction(direction)
    if max_images is not None:
        check_int("max_images", max_images, 1)
    check_int("batch_size", batch_size, 1)
    translator = model if callable(model) else load_translator(
        model, direction=direction, checkpoint=checkpoint, epoch=epoch
    )
    if image_size is None and not callable(model):
        trained = training_size(model)
        image_size = trained[0] if trained else None
    image_size = image_size or DEFAULT_IMAGE_SIZE
    if fid not in (None, True, False):
        raise ValueError(f"`fid` must be None (if available), True or False. Received: fid={fid!r}")
    fid_model, fid_note = _fid_model(fid, fid_weights)  # fail early, before translating

    split = data if isinstance(data, TestSplit) else load_test_split(
        data, direction, image_size, channels=_channels(translator), max_images=max_images
    )
    outputs = np.concatenate([
        np.asarray(translator(split.inputs[i : i + batch_size]), np.float32)
        for i in range(0, len(split.inputs), batch_size)
    ])
    report = EvaluationReport(
        model={
            "path": os.fspath(translator.source) if hasattr(translator, "source") else repr(model),
            "kind": getattr(translator, "kind", "callable"),
        },
        data={"root": os.fspath(data) if not isinstance(data, TestSplit) else "(given)",
              "form": split.form},
        direction=direction,
        count=len(outputs),
        image_size=int(split.inputs.shape[1]),
    )
    if split.targets is not None:
        metrics = paired_metrics(outputs, split.targets)
        report.paired = {name: _mean_std(values) for name, values in metrics.items()}
        report.per_image = [
            {"name": name, **{k: float(v[i]) for k, v in metrics.items()}}
            for i, name in enumerate(split.names)
        ]
        if split.inputs.shape == split.targets.shape:
            # What a model that changes nothing scores: a translation must beat it.
            baseline = paired_metrics(split.inputs, split.targets)
            report.baseline = {name: _mean_std(values) for name, values in baseline.items()}
            report.worse_than_input = any(
                report.paired[name]["mean"] < report.baseline[name]["mean"] for name, *_ in _INPUT_MUST_BEAT
            )
    report.checkerboard = _checkerboard(outputs, split.reals)
    if fid_model is not None:
        report.fid, report.kid, report.fid_note = _fid_kid(
            fid_model, outputs, split.reals, kid_subsets, kid_subset_size
        )
    else:
        report.fid_note = fid_note
    report.seconds = round(time.perf_counter() - start, 2)
    if out_dir is not None:
        _write(report, split, outputs, pathlib.Path(out_dir))
    if verbose:
        print(report.summary())
    return report


def _checkerboard(outputs, reals):
    try:
        return quality.checkerboard_score(outputs, reference=reals)
    except ValueError:  # odd sizes, or real images without period-2 content: no score
        return None


def _channels(translator):
    channels = getattr(translator, "input_channels", 3)
    # Generators map C channels to C' (3 -> 3 for every model we train).
    return (channels, getattr(translator, "output_channels", channels))


def _fid_model(fid, fid_weights):
    """(the FID network, None), or (None, why there is none) when it is not asked for or not at hand."""
    from tfcyclegan import inception

    if fid is False:
        return None, "not computed (fid=False / --no-fid)."
    if fid is None and fid_weights is None:
        try:
            return inception.load_fid_inception(), None
        # Offline (OSError: the message names the URL, --fid-weights and the
        # cache), or pytorch-fid's .pth without torch to read it (ImportError).
        # Not asked for, so the other metrics go on; a broken file still fails.
        except (OSError, ImportError) as error:
            return None, f"skipped: {' '.join(str(error).split())}"
    return inception.load_fid_inception(weights=fid_weights), None


def _fid_kid(fid_model, outputs, reals, subsets, subset_size):
    from tfcyclegan import fid

    def rgb(images):
        return np.repeat(images, 3, axis=-1) if images.shape[-1] == 1 else images

    fake = fid.compute_features(fid_model, [rgb(outputs[i : i + 8]) for i in range(0, len(outputs), 8)], 0)
    real = fid.compute_features(fid_model, [rgb(reals[i : i + 8]) for i in range(0, len(reals), 8)], 0)
    if min(len(fake), len(real)) < 2:
        return None, None, "needs at least 2 images on each side."
    fid_value = float(fid.frechet_inception_distance(fake, real))
    kid = fid.kernel_inception_distance(
        fake, real, num_subsets=subsets, subset_size=subset_size
    )
    note = None
    if min(len(fake), len(real)) < 2048:
        note = (
            f"over {len(fake)} translated and {len(real)} real images; below 2048 images "
            "FID is biased upwards, so compare it only over the same test split."
        )
    return fid_value, {"mean": float(kid.mean), "std": float(kid.std)}, note


# --- Output files ----------------------------------------------------------------


def _write(report, split, outputs, out_dir):
    out_dir.mkdir(parents=True, exist_ok=True)
    fileio.atomic_write(out_dir / REPORT_NAME, json.dumps(report.to_dict(), indent=2) + "\n")
    fileio.atomic_write(out_dir / "evaluation.md", report.to_markdown())
    if report.per_image:
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=["name", "psnr_db", "ssim", "l1"])
        writer.writeheader()
        writer.writerows(report.per_image)
        fileio.atomic_write(out_dir / "per_image.csv", text.getvalue())
    fileio.write_png(out_dir / "cases.png", cases_grid(split, outputs, report.per_image))


def cases_grid(split, outputs, per_image, count=CASES):
    """uint8 picture: the `count` worst, then best, translations by PSNR (input | output | truth).

    Without ground truth: the first `2 * count` inputs and their translations.
    """
    if per_image:
        order = np.argsort([entry["psnr_db"] for entry in per_image])
        chosen = list(order[:count]) + [i for i in order[::-1][:count] if i not in order[:count]]
    else:
        chosen = list(range(min(2 * count, len(outputs))))
    columns = [split.inputs[chosen], outputs[chosen]]
    labels = ["input", "output"]
    if split.targets is not None:
        columns.append(split.targets[chosen])
        labels.append("truth")
    return imaging.grid(columns, labels)
