"""Writing a generator as a SavedModel for TF Serving (`OUT/<model_name>/<version>/`)."""

import contextlib
import io
import os
import pathlib
import re
import shutil
import uuid

import keras

from tfcyclegan.checks import check_int
from tfcyclegan.config import check_choice
from tfcyclegan.export.loading import channels_of, generators_of, is_generator, with_compute_dtype
from tfcyclegan.export.signatures import ServingFunctions
from tfcyclegan.fileio import atomic_write, replace_dir

DEFAULT_MAX_PIXELS = 2048 * 2048
"""Largest image (height x width) the SavedModel accepts per image.

At ngf=64 one full-resolution activation of a 2048 x 2048 image is 1 GiB of
float32; a server should refuse larger requests with a message rather than run
out of memory.
"""


DEFAULT_MAX_BATCH_SIZE = 64
"""Most images the SavedModel accepts per request, in every signature.

`max_pixels` bounds one image; the float signatures run a whole batch through
the generator at once, so memory grows with the batch too. TF Serving's
request batching (`export/serving/batching_parameters.txt`) stays below it.
"""


# The SavedModel's arithmetic. bfloat16 keeps float32 weights, inputs and
# outputs and convolves in bfloat16: ~2x faster on CPUs with AVX512_BF16 or
# AMX (Xeon since Cooper Lake, EPYC since Zen 4) and on TPUs; slower where
# bfloat16 is emulated (AVX2-only CPUs). See benchmarks/README.md.
SAVED_MODEL_DTYPES = ("float32", "bfloat16")


def check_version(version):
    return check_int("version", version, 1, hint="TF Serving loads numbered folders")


def check_model_name(model_name):
    if not isinstance(model_name, str) or not re.fullmatch(
        r"[A-Za-z0-9][A-Za-z0-9_.-]*", model_name
    ):
        raise ValueError(
            "`model_name` must be a folder name of letters, digits, '_', '-' or '.', e.g. "
            f"'cyclegan_a2b'. Received: model_name={model_name!r}"
        )


def write_archive(out_dir, endpoints):
    # The endpoints' functions carry the generator's variables. Calling
    # `archive.track(generator)` as well would save every weight twice (once
    # as Keras variables, once as the tf.Variables the functions capture):
    # a 92 MB SavedModel for 46 MB of ResNet-9 weights (measured).
    archive = keras.export.ExportArchive()
    for name, (fn, signature) in endpoints.items():
        archive.add_endpoint(name, fn, input_signature=signature)
    # Keras prints the endpoints otherwise; the report says what was written.
    with contextlib.redirect_stdout(io.StringIO()):
        archive.write_out(os.fspath(out_dir), verbose=False)


def export_saved_model(
    generator,
    out_dir,
    model_name="cyclegan_a2b",
    version=1,
    overwrite=False,
    max_pixels=DEFAULT_MAX_PIXELS,
    compute_dtype="float32",
    max_batch_size=DEFAULT_MAX_BATCH_SIZE,
):
    """Writes `generator` as a SavedModel for TF Serving at `out_dir/model_name/version/`.

    The version is written to a hidden temporary folder beside it and renamed
    into place, so a crashed export never leaves a partial version that TF
    Serving would try to load (it only looks at numeric folder names).

    Args:
        generator: a tfcyclegan generator (`keras.Model` with a "size_check" layer).
        out_dir: the models folder (TF Serving's `--model_base_path` is
            `out_dir/model_name`).
        model_name: TF Serving's model name and the folder name.
        version: positive integer version folder.
        overwrite: replace an existing version.
        max_pixels: largest height x width accepted per image; larger requests
            fail with InvalidArgument.
        compute_dtype: "float32" (the model's numbers), or "bfloat16" (float32
            weights and tensors in and out, bfloat16 arithmetic inside: about
            twice as fast on CPUs with AVX512_BF16 / AMX, slower on CPUs
            without; PSNR vs float32 measured 44 dB on random weights, 61 dB on
            a trained model).
        max_batch_size: most images per request, in every signature; larger
            requests fail with InvalidArgument naming their batch size.

    Returns:
        The version folder (`pathlib.Path`).
    """
    check_version(version)
    check_model_name(model_name)
    if not is_generator(generator):
        generators_of(generator)  # raises the right message
    check_int("max_pixels", max_pixels, 1)
    check_int("max_batch_size", max_batch_size, 1)
    check_choice("compute_dtype", compute_dtype, SAVED_MODEL_DTYPES)
    generator = with_compute_dtype(generator, compute_dtype)
    in_channels, _ = channels_of(generator)
    if in_channels not in (1, 3):
        raise ValueError(
            "serving_default decodes images to 1 (grayscale) or 3 (RGB) channels. Received: "
            f"a generator taking {in_channels} channels."
        )
    root = pathlib.Path(out_dir) / model_name
    target = root / str(version)
    if target.exists() and not overwrite:
        raise FileExistsError(
            f"Version {version} of {model_name} exists at {target}. Pass another version "
            "(TF Serving serves the highest) or overwrite=True."
        )
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".tmp-{version}-{uuid.uuid4().hex[:8]}"
    try:
        write_archive(tmp, ServingFunctions(generator, max_pixels, max_batch_size).signatures())
        replace_dir(tmp, target, overwrite)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def serving_config(model_names, base_path="/models"):
    """TF Serving's models.config text serving each of `model_names` from `base_path/NAME`."""
    blocks = "".join(
        "  config {\n"
        f'    name: "{name}"\n'
        f'    base_path: "{base_path}/{name}"\n'
        '    model_platform: "tensorflow"\n'
        "  }\n"
        for name in model_names
    )
    return "model_config_list {\n" + blocks + "}\n"


SERVING_CONFIG_NAME = "models.config"


def served_model_names(config_text):
    """The model names a TF Serving models.config text serves, in order."""
    return re.findall(r'\bname:\s*"([^"]+)"', config_text)


def write_serving_config(out_dir, model_names, base_path="/models"):
    """Writes `out_dir/models.config` serving `model_names` and the models it served before.

    Exporting another model into a folder adds it to the config rather than
    replacing the config. A config that already serves every name is left
    as it is (with any edits made to it); otherwise it is rewritten, in
    `serving_config`'s form, with the earlier names first. Written atomically.

    Returns:
        The path of models.config.
    """
    path = pathlib.Path(out_dir) / SERVING_CONFIG_NAME
    earlier = served_model_names(path.read_text()) if path.is_file() else []
    names = list(dict.fromkeys([*earlier, *model_names]))
    if names != earlier:
        atomic_write(path, serving_config(names, base_path))
    return path
