"""The `tfcyclegan` command: a thin layer over the library.

    tfcyclegan train --data horse2zebra/ --name h2z
    tfcyclegan train --resume runs/h2z
    tfcyclegan distill --teacher runs/h2z --student mobile_resnet --ngf 32
    tfcyclegan translate --model runs/h2z --input photos/ --output zebras/
    tfcyclegan export --model runs/h2z --out exported/
    tfcyclegan import-torch horse2zebra.pth --out G.keras
    tfcyclegan check-data --data horse2zebra/
    tfcyclegan demo

Every command maps its flags onto library calls; `main(argv)` returns the
exit code: 0 done, 1 failed (a one-line message says why, naming the file or
flag), 2 bad flags, 130 stopped by Ctrl-C (after saving).

Global flags, before or after the command: `-v/--verbose` shows TensorFlow's
own logs (hidden by default), `--debug` shows the traceback of an error.
Parsing flags imports no TensorFlow, so `--help` answers at once.
"""

import argparse
import os
import sys

from tfcyclegan.config import (
    DATA_DIRECTIONS,
    DISCRIMINATORS,
    DISTILL_LOSSES,
    GAN_MODES,
    GENERATORS,
    INIT_TYPES,
    METHODS,
    MIXED_PRECISION,
    NORMS,
    PREPROCESS_MODES,
    PRESETS,
    STRATEGIES,
    UPSAMPLE_MODES,
    Config,
    parse_generator,
)
from tfcyclegan.distillation import STUDENTS

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def _int_list(text):
    """`"0,4,8"` as (0, 4, 8); argparse names the flag in its error."""
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, e.g. 0,4,8,12,16; got {text!r}"
        ) from None


# Flags of `train` that set a config field: (flag, "section.field", argparse kwargs).
# Defaults stay None so that only flags the user gives override the config.
CONFIG_FLAGS = (
    ("--model", "model.method", dict(choices=METHODS, help="cyclegan (unpaired, default), cut or fastcut (unpaired, "
                                                           "one generator), pix2pix (aligned pairs); each starts "
                                                           "from its authors' defaults")),
    ("--netG", "model.generator", dict(metavar="NAME", help=f"generator: {', '.join(GENERATORS)} or (mobile_)resnet_<n>blocks")),
    ("--ngf", "model.ngf", dict(type=int, help="generator filters in the first layer (64)")),
    ("--ndf", "model.ndf", dict(type=int, help="discriminator filters in the first layer (64)")),
    ("--netD", "model.discriminator", dict(choices=DISCRIMINATORS, help="basic = 70x70 PatchGAN")),
    ("--n-layers-d", "model.n_layers_d", dict(type=int, help="PatchGAN layers with --netD n_layers")),
    ("--norm", "model.norm", dict(choices=NORMS)),
    ("--dropout", "model.dropout", dict(action=argparse.BooleanOptionalAction, help="dropout in the generators")),
    ("--init-type", "model.init_type", dict(choices=INIT_TYPES)),
    ("--upsample", "model.upsample", dict(choices=UPSAMPLE_MODES, help="ResNet generator upsampling: transpose "
                                                                      "(paper), resize_conv or antialias (no checkerboard)")),
    ("--init-gain", "model.init_gain", dict(type=float)),
    ("--input-nc", "model.input_channels", dict(type=int, help="channels of domain A images")),
    ("--output-nc", "model.output_channels", dict(type=int, help="channels of domain B images")),
    ("--conditional", "model.conditional", dict(action=argparse.BooleanOptionalAction,
                                                help="pix2pix: D judges (x, y) (default) or y alone")),
    ("--load-size", "data.load_size", dict(type=int, help="resize to this before cropping (286)")),
    ("--crop-size", "data.crop_size", dict(type=int, help="training image size (256)")),
    ("--preprocess", "data.preprocess", dict(choices=PREPROCESS_MODES)),
    ("--flip", "data.flip", dict(action=argparse.BooleanOptionalAction, help="random horizontal flips")),
    ("--direction", "data.direction", dict(choices=DATA_DIRECTIONS, help="AtoB (default) or BtoA: swap the sides")),
    ("--batch-size", "data.batch_size", dict(type=int, help="image pairs per step (1)")),
    ("--cache", "data.cache", dict(action=argparse.BooleanOptionalAction, help="keep decoded images in memory")),
    ("--skip-bad-files", "data.skip_bad_files", dict(action=argparse.BooleanOptionalAction,
                                                     help="leave unreadable images out (and list them) instead of stopping")),
    ("--gan-mode", "train.gan_mode", dict(choices=GAN_MODES)),
    ("--lambda-a", "train.lambda_a", dict(type=float, help="forward cycle weight (10)")),
    ("--lambda-b", "train.lambda_b", dict(type=float, help="backward cycle weight (10)")),
    ("--lambda-identity", "train.lambda_identity", dict(type=float, help="identity weight, fraction of lambda (0.5)")),
    ("--lambda-gan", "train.lambda_gan", dict(type=float, help="adversarial weight (1); 0: cycle alone / L1 alone")),
    ("--lambda-l1", "train.lambda_l1", dict(type=float, help="pix2pix: weight of ||y - G(x)||_1 (100)")),
    ("--lambda-nce", "train.lambda_nce", dict(type=float, help="CUT: PatchNCE weight (1; FastCUT 10)")),
    ("--nce-layers", "model.nce_layers", dict(type=_int_list, metavar="I,J,...",
                                              help="CUT: encoder layers PatchNCE compares, the authors' "
                                              "indices (0,4,8,12,16); fewer blocks need smaller ones")),
    ("--pool-size", "train.pool_size", dict(type=int, help="image history per discriminator (50); 0 disables")),
    ("--lr", "train.learning_rate", dict(type=float, help="Adam learning rate (2e-4)")),
    ("--beta1", "train.beta_1", dict(type=float, help="Adam beta_1 (0.5)")),
    ("--beta2", "train.beta_2", dict(type=float, help="Adam beta_2 (0.999)")),
    ("--epochs", "train.epochs", dict(type=int, help="epochs at the initial learning rate (100)")),
    ("--epochs-decay", "train.epochs_decay", dict(type=int, help="epochs of linear decay to zero (100)")),
    ("--steps-per-epoch", "train.steps_per_epoch", dict(type=int, help="default: max(|A|, |B|) / batch size")),
    ("--seed", "train.seed", dict(type=int, help="seed for weights, data order and pools")),
    ("--deterministic", "train.deterministic", dict(action=argparse.BooleanOptionalAction,
                                                    help="TensorFlow op determinism: exactly repeatable runs")),
    ("--jit", "train.jit_compile", dict(action=argparse.BooleanOptionalAction, help="compile the step with XLA")),
    ("--mixed-precision", "train.mixed_precision", dict(choices=MIXED_PRECISION)),
    ("--checkpoint-every", "train.checkpoint_every", dict(type=int, help="steps between checkpoints (1000); epoch ends always")),
    ("--keep-checkpoints", "train.keep_checkpoints", dict(type=int, help="recent checkpoints kept (3)")),
    ("--save-epoch-every", "train.save_epoch_every", dict(type=int, metavar="K",
                                                          help="also keep every K-th epoch's checkpoint, never "
                                                          "rotated away (for --epoch N later; 0: none)")),
    ("--sample-every", "train.sample_every", dict(type=int, help="steps between sample grids; epoch ends always")),
    ("--num-samples", "train.num_samples", dict(type=int, help="test images in the sample grids (4)")),
    ("--validate", "train.validate", dict(action=argparse.BooleanOptionalAction, help="test-split losses after each epoch")),
    ("--evaluate-every", "train.evaluate_every", dict(type=int, metavar="EPOCHS",
                                                      help="evaluate on the test split every N epochs (TensorBoard)")),
    ("--fid-weights", "train.fid_weights", dict(help="with --evaluate-every: FID/KID with these weights")),
    ("--strategy", "train.strategy", dict(choices=STRATEGIES, help="tf.distribute strategy (default: one device)")),
)


def _dest(flag):
    return flag.lstrip("-").replace("-", "_")


def config_from_args(args, base=None):
    """The Config that `base` (or --config, or the defaults) and the flags describe."""
    if base is None:
        preset = getattr(args, "preset", None)
        if getattr(args, "config", None):
            if preset:
                raise ValueError(f"--config and --preset both pick the starting settings; give one. "
                                 f"Received: --config {args.config} --preset {preset}")
            base = Config.load(args.config)
        else:
            base = Config.for_method(getattr(args, "model", None) or "cyclegan", preset=preset or "paper")
    sections = base.to_dict()  # every section it has (a student run also has `distill`)
    image_size = getattr(args, "image_size", None)
    if image_size is not None:
        # The paper's presets: 256 px uses 9 residual blocks and loads at 286;
        # 128 px uses 6 blocks (section 7.2), loading in the same proportion.
        sections["data"]["crop_size"] = image_size
        sections["data"]["load_size"] = round(image_size * 286 / 256)
        sections["model"]["generator"] = "resnet_6blocks" if image_size <= 128 else "resnet_9blocks"
    for flag, target, _ in CONFIG_FLAGS:
        value = getattr(args, _dest(flag), None)
        if value is not None:
            section, field = target.split(".")
            sections[section][field] = value
    return Config.from_dict(sections)


# === train ===


def _add_train(subparsers):
    p = subparsers.add_parser(
        "train",
        help="train a CycleGAN (unpaired) or pix2pix (paired) model",
        description="Train with model.fit. Defaults are the papers' settings (--model picks the method).",
    )
    source = p.add_argument_group("data (one of)")
    source.add_argument("--data", help="dataset root: trainA/ trainB/ (testA/ testB/); for pix2pix the "
                                       "aligned layout train/ (val/ test/) of A|B images; or tfds:<name>")
    source.add_argument("--domain-a", help="folder of domain A (X) images (pix2pix: pairs by file name)")
    source.add_argument("--domain-b", help="folder of domain B (Y) images")
    source.add_argument("--tfds", help="TFDS dataset, e.g. cycle_gan/horse2zebra (needs a network)")
    run = p.add_argument_group("run")
    run.add_argument("--name", help="run name: the folder RUNS_DIR/NAME (default: from the data)")
    run.add_argument("--runs-dir", default="runs", help="where run folders go (runs)")
    run.add_argument("--resume", metavar="RUN_DIR", help="continue a run from its latest checkpoint")
    run.add_argument("--config", help="a config.json to start from (flags override it)")
    run.add_argument("--preset", choices=PRESETS,
                     help="starting settings: paper (default: the method's published ones) or recommended "
                     "(only what docs/quality.md measured better: CycleGAN upsamples with resize_conv)")
    run.add_argument("--image-size", type=int, help="preset: 256 (9 blocks, load 286) or 128 (6 blocks, load 143)")
    run.add_argument("--progress", "--verbose", dest="progress", type=int, default=1, choices=(0, 1, 2),
                     help="Keras fit verbosity: 0 silent, 1 progress bar, 2 a line per epoch (--verbose N: "
                     "the old spelling; the global -v/--verbose shows TensorFlow's logs)")
    options = p.add_argument_group("settings (override the config)")
    for flag, _, kwargs in CONFIG_FLAGS:
        options.add_argument(flag, default=None, **kwargs)
    p.set_defaults(run=_train)


def _default_run_name(spec):
    source = spec.tfds or spec.data or spec.domain_a
    name = os.path.basename(os.path.normpath(source.replace("tfds:", "")))
    return name or "run"


def _train(args):
    from tfcyclegan import training

    if args.resume:
        if args.config or args.image_size or args.preset:
            raise ValueError("--resume continues a run with its own config; drop --config/--preset/--image-size.")
        base = training.load_run_config(args.resume)
        config = config_from_args(args, base=base)
        spec = _data_spec(args, required=False)
        run_dir = args.resume
    else:
        config = config_from_args(args)
        spec = _data_spec(args, required=True)
        run_dir = os.path.join(args.runs_dir, args.name or _default_run_name(spec))
    result = training.train(config, run_dir, data_spec=spec, resume=bool(args.resume), verbose=args.progress)
    return EXIT_INTERRUPTED if result.interrupted else EXIT_OK


def _data_spec(args, required):
    from tfcyclegan.training import DataSpec

    given = dict(data=args.data, domain_a=args.domain_a, domain_b=args.domain_b, tfds=args.tfds)
    if all(value is None for value in given.values()):
        if required:
            raise ValueError("Say where the images are: --data ROOT, --domain-a DIR --domain-b DIR, or --tfds NAME.")
        return None
    return DataSpec(**given)


# === distill ===

# Flags of `train` that a student run does not take: its method, generator and
# channels come from `distill`'s own flags and the teacher; it has no cycle,
# identity, L1, NCE term or image pool; `--direction` is the teacher's.
_NOT_FOR_DISTILL = (
    "--model", "--netG", "--ngf", "--input-nc", "--output-nc", "--conditional", "--dropout",
    "--direction", "--lambda-a", "--lambda-b", "--lambda-identity", "--lambda-l1", "--lambda-nce",
    "--nce-layers", "--lambda-gan", "--pool-size", "--evaluate-every", "--fid-weights",
)


def _add_distill(subparsers):
    p = subparsers.add_parser(
        "distill",
        help="train a small student generator (phone-sized) to reproduce a trained model (the teacher)",
        description="Distill a trained run (the teacher) into a cheaper generator: the student learns "
        "the teacher's outputs on the training images (L1 or L2), optionally with a GAN term and "
        "feature matching. The student run is a run folder like train's (checkpoints, --resume, "
        "samples: input | teacher | student); export, translate and evaluate use the student alone.",
        epilog="example: tfcyclegan distill --teacher runs/h2z --student mobile_resnet --ngf 32 "
        "--n-blocks 9  (then: tfcyclegan export --model runs/h2z_student --out exported/)",
    )
    teacher = p.add_argument_group("teacher")
    teacher.add_argument("--teacher", metavar="RUN_DIR", help="the trained run folder to learn from")
    _add_checkpoint_flags(teacher, whose="the teacher's", example="ckpt-1200 (default: its newest state)",
                          dest_prefix="teacher_")
    teacher.add_argument("--direction", dest="teacher_direction", choices=("a2b", "b2a"),
                         help="the teacher's direction to learn: a2b (G, default) or b2a (F, CycleGAN)")
    student = p.add_argument_group("student")
    student.add_argument("--student", choices=STUDENTS,
                         help="mobile_resnet (depthwise-separable blocks, default) or resnet (the paper's blocks)")
    student.add_argument("--ngf", type=int, help="student filters in the first layer (32; the paper's teacher: 64)")
    student.add_argument("--n-blocks", type=int, help="student residual blocks (9)")
    objective = p.add_argument_group("objective")
    objective.add_argument("--loss", choices=DISTILL_LOSSES, help="distance to the teacher's output (l1)")
    objective.add_argument("--lambda-distill", type=float, help="weight of that distance (10)")
    objective.add_argument("--lambda-feature", type=float,
                           help="weight of matching residual-block features through 1x1 adapters (0: off)")
    objective.add_argument("--lambda-gan", type=float,
                           help="weight of a GAN term, a PatchGAN on real target images (0: off)")
    source = p.add_argument_group("data (default: the teacher's)")
    source.add_argument("--data", help="dataset root (as train's --data)")
    source.add_argument("--domain-a", help="folder of domain A images")
    source.add_argument("--domain-b", help="folder of domain B images")
    source.add_argument("--tfds", help="TFDS dataset name")
    run = p.add_argument_group("run")
    run.add_argument("--name", help="run name: the folder RUNS_DIR/NAME (default: TEACHER_student)")
    run.add_argument("--runs-dir", default="runs", help="where run folders go (runs)")
    run.add_argument("--resume", metavar="RUN_DIR", help="continue a student run from its latest checkpoint")
    run.add_argument("--progress", type=int, default=1, choices=(0, 1, 2),
                     help="Keras fit verbosity: 0 silent, 1 progress bar, 2 a line per epoch")
    options = p.add_argument_group("settings (default: the teacher's data and schedule; as in train)")
    for flag, _, kwargs in CONFIG_FLAGS:
        if flag not in _NOT_FOR_DISTILL:
            options.add_argument(flag, default=None, **kwargs)
    p.set_defaults(run=_distill)


# distill's flags that set the student config's `distill` section when resuming.
_DISTILL_SECTION_FLAGS = ("loss", "lambda_distill", "lambda_feature")


def _distill(args):
    from tfcyclegan import distillation, training

    if args.resume:
        if args.teacher or args.teacher_checkpoint or args.teacher_epoch or args.teacher_direction:
            raise ValueError(
                "--resume continues a student run with its own teacher; drop --teacher, "
                "--checkpoint, --epoch and --direction."
            )
        base = training.load_run_config(args.resume)
        if base.model.method != "distill":
            raise ValueError(
                f"{args.resume} is a {base.model.method} run, not a student run: resume it with "
                f"`tfcyclegan train --resume {args.resume}`."
            )
        changes = {k: getattr(args, k) for k in _DISTILL_SECTION_FLAGS if getattr(args, k) is not None}
        model = base.model
        if args.student is not None or args.n_blocks is not None:
            family, blocks = parse_generator(model.generator)
            model = model.replace(generator=f"{args.student or family}_"
                                            f"{blocks if args.n_blocks is None else args.n_blocks}blocks")
        base = base.replace(model=model, distill=base.distill.replace(**changes))
        config = config_from_args(args, base=base)
        spec = _data_spec(args, required=False)
        run_dir = args.resume
    else:
        if not args.teacher:
            raise ValueError("Name the trained run to learn from: --teacher RUN_DIR.")
        given = dict(direction=args.teacher_direction, student=args.student, ngf=args.ngf,
                     n_blocks=args.n_blocks, loss=args.loss, lambda_distill=args.lambda_distill,
                     lambda_feature=args.lambda_feature, lambda_gan=args.lambda_gan,
                     checkpoint=args.teacher_checkpoint, epoch=args.teacher_epoch)
        base = distillation.student_config(args.teacher, **{k: v for k, v in given.items() if v is not None})
        config = config_from_args(args, base=base)
        spec = _data_spec(args, required=False) or distillation.teacher_data_spec(args.teacher)
        name = args.name or os.path.basename(os.path.normpath(args.teacher)) + "_student"
        run_dir = os.path.join(args.runs_dir, name)
    result = training.train(config, run_dir, data_spec=spec, resume=bool(args.resume), verbose=args.progress)
    return EXIT_INTERRUPTED if result.interrupted else EXIT_OK


# === translate ===


def _add_translate(subparsers):
    p = subparsers.add_parser(
        "translate",
        help="translate an image or a folder of images",
        description="Translate images of any size; writes them under --output with the same names.",
    )
    p.add_argument("--model", required=True, help="a run folder, .keras file, SavedModel or .tflite")
    p.add_argument("--input", required=True, help="an image file or a folder of images")
    p.add_argument("--output", required=True, help="folder for the translated images")
    p.add_argument("--direction", default="a2b", choices=("a2b", "b2a"), help="a2b uses G, b2a uses F")
    p.add_argument("--batch-size", type=int, default=4, help="images of one size translated together")
    p.add_argument("--threads", type=int, help="CPU threads for a .tflite model (default: all)")
    p.add_argument("--load-size", type=int, metavar="N",
                   help="first resize each image so its short side is N px (bicubic; default: keep sizes)")
    p.add_argument("--tile", type=int, metavar="PX",
                   help="translate in PX x PX tiles with blended seams (bounded memory; 0: never). "
                   "Default: tiles of 1024 for images above 1.5 megapixels (docs/large_images.md)")
    p.add_argument("--tile-overlap", type=int, default=64, metavar="PX", help="pixels shared by neighbouring tiles (64)")
    _add_checkpoint_flags(p.add_argument_group("run folders (default: the newest state)"))
    p.set_defaults(run=_translate)


def _add_checkpoint_flags(group, whose="a run's", example="ckpt-1200 or epoch-60", dest_prefix=""):
    """--checkpoint NAME or --epoch N (one of), in `group`: which saved state of a run folder to load.

    Their values land in `args.<dest_prefix>checkpoint` and `args.<dest_prefix>epoch`.
    """
    choice = group.add_mutually_exclusive_group()
    choice.add_argument("--checkpoint", dest=f"{dest_prefix}checkpoint", metavar="NAME",
                        help=f"{whose} checkpoint, e.g. {example}")
    choice.add_argument("--epoch", dest=f"{dest_prefix}epoch", type=int, metavar="N",
                        help=f"{whose} checkpoint of epoch N")


def _translate(args):
    from tfcyclegan import translate

    report = translate.translate_files(
        args.model, args.input, args.output, direction=args.direction, batch_size=args.batch_size,
        num_threads=args.threads, load_size=args.load_size, tile=args.tile, tile_overlap=args.tile_overlap,
        checkpoint=args.checkpoint, epoch=args.epoch,
    )
    print(report.summary())
    return EXIT_OK if not report.failed else EXIT_FAILED


# === export ===


def _size_pair(text):
    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HEIGHTxWIDTH, e.g. 256x256; got {text!r}") from None
    return height, width


def _add_export(subparsers):
    p = subparsers.add_parser(
        "export",
        help="export generators as a SavedModel (TF Serving) and TFLite files (phones), parity-checked",
        description="Export G and/or F for deployment. Every artifact is compared with the Keras "
        "model; the report is printed and saved as OUT/export_report.json.",
    )
    p.add_argument("--model", required=True, help="a run folder or .keras file (CycleGAN, pix2pix or one generator)")
    p.add_argument("--out", required=True, help="export folder")
    p.add_argument("--format", dest="formats", action="append", choices=("saved_model", "tflite"),
                   help="repeat for several; default both")
    p.add_argument("--direction", default="both", choices=("a2b", "b2a", "both"))
    p.add_argument("--tflite-mode", dest="tflite_modes", action="append",
                   choices=("fp32", "fp16", "dynamic_int8", "int8"),
                   help="repeat for several; default fp32, fp16 (+ int8 with --representative-data); "
                        "dynamic_int8 (smallest file, ~4x slower than fp32 on CPUs) only when asked for")
    p.add_argument("--tflite-io", action="append", choices=("float32", "uint8"),
                   help="float32: [-1, 1] tensors; uint8: camera pixels in and out (default both)")
    p.add_argument("--representative-data", help="folder of images for int8 calibration and the parity check")
    p.add_argument("--tflite-input-size", type=_size_pair, metavar="HxW",
                   help="fixed input size (GPU delegates); default dynamic")
    p.add_argument("--model-name", help="artifact name prefix (default: cyclegan or pix2pix -> cyclegan_a2b)")
    p.add_argument("--version", type=int, default=1, help="SavedModel version folder (TF Serving)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing version or file")
    p.add_argument("--no-parity", dest="parity", action="store_false", help="skip the parity check")
    p.add_argument("--parity-size", type=_size_pair, metavar="HxW", help="parity image size (default: training size)")
    p.add_argument("--max-pixels", type=int, help="the SavedModel refuses larger images (default 2048x2048)")
    p.add_argument("--max-batch-size", type=int, help="the SavedModel refuses larger requests (default 64)")
    p.add_argument("--saved-model-dtype", default="float32", choices=("float32", "bfloat16"),
                   help="the SavedModel's arithmetic: bfloat16 is ~2x faster on CPUs with AVX512_BF16/AMX "
                   "(slower without), PSNR vs float32 reported (default float32)")
    _add_checkpoint_flags(p.add_argument_group("run folders (default: the newest state)"))
    p.set_defaults(run=_export)


def _export(args):
    from tfcyclegan import export

    kwargs = dict(
        direction=args.direction,
        representative_data=args.representative_data,
        tflite_input_size=args.tflite_input_size,
        model_name=args.model_name,
        version=args.version,
        overwrite=args.overwrite,
        parity=args.parity,
        parity_size=args.parity_size,
        saved_model_dtype=args.saved_model_dtype,
    )
    if args.max_pixels is not None:
        kwargs["max_pixels"] = args.max_pixels
    if args.max_batch_size is not None:
        kwargs["max_batch_size"] = args.max_batch_size
    if args.formats:
        kwargs["formats"] = tuple(args.formats)
    if args.tflite_modes:
        kwargs["tflite_modes"] = tuple(args.tflite_modes)
    if args.tflite_io:
        kwargs["tflite_io"] = tuple(args.tflite_io)
    model = args.model
    if args.checkpoint is not None or args.epoch is not None:
        from tfcyclegan.export import loading

        model = loading.load_keras(args.model, checkpoint=args.checkpoint, epoch=args.epoch)
    try:
        report = export.export(model, args.out, **kwargs)
    except RuntimeError as error:  # a parity bound was exceeded (the report is written)
        print(f"tfcyclegan export: {error}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK if report.ok else EXIT_FAILED


# === evaluate ===


def _add_evaluate(subparsers):
    p = subparsers.add_parser(
        "evaluate",
        help="measure a model on a test split: FID/KID, and PSNR/SSIM/L1 with ground truth",
        description="Translate the test split of --data with any model form (run folder, .keras, "
        "SavedModel, .tflite) and measure it. Writes evaluation.json, evaluation.md, "
        "per_image.csv and cases.png (the worst and best translations).",
    )
    p.add_argument("--model", required=True, help="a run folder, .keras file, SavedModel or .tflite")
    p.add_argument("--data", required=True, help="dataset root with test/ (aligned A|B) or testA/ testB/")
    p.add_argument("--direction", default="a2b", choices=("a2b", "b2a"), help="a2b: A -> B (G), b2a: F")
    p.add_argument("--out", help="folder for the results (default: RUN/evaluation for a run folder, "
                                 "else ./evaluation)")
    p.add_argument("--image-size", type=int, help="test images are resized to this (default: training size)")
    p.add_argument("--fid-weights", help="pytorch-fid's pt_inception-2015-12-05-6726825d.pth (or .npz / "
                                         ".safetensors of it); default: downloaded once into the Keras cache")
    p.add_argument("--no-fid", dest="fid", action="store_false", help="skip FID and KID")
    p.add_argument("--max-images", type=int, help="evaluate at most this many test images")
    _add_checkpoint_flags(p.add_argument_group("run folders (default: the newest state)"))
    p.set_defaults(run=_evaluate)


def _evaluate(args):
    from tfcyclegan import evaluate

    out = args.out
    if out is None:
        is_run = os.path.isfile(os.path.join(args.model, "config.json"))
        out = os.path.join(args.model, "evaluation") if is_run else "evaluation"
    evaluate.evaluate(
        args.model, args.data, args.direction, out_dir=out, image_size=args.image_size,
        fid=args.fid, fid_weights=args.fid_weights, max_images=args.max_images,
        checkpoint=args.checkpoint, epoch=args.epoch,
    )
    print(f"Wrote {out}/")
    return EXIT_OK


# === ablate ===


def _add_ablate(subparsers):
    p = subparsers.add_parser(
        "ablate",
        help="the paper's ablation study: train and evaluate each variant with the same budget",
        description="Train each variant (CycleGAN and its ablations, pix2pix) on a paired dataset with "
        "the same budget and seed, evaluate each on the test split, and write ablation.md and "
        "ablation.png. `--variants list` names the variants.",
    )
    p.add_argument("--data", required=True, help="paired dataset root (aligned layout: train/ test/)")
    p.add_argument("--out", default="ablation", help="the study's folder (ablation)")
    # (Not listed here: that would import tfcyclegan.ablate, and TensorFlow, for --help.)
    p.add_argument("--variants", help="comma-separated variant names, or `list` to print them "
                                      "(default: the paper's study)")
    p.add_argument("--fid", action="store_true", help="also compute FID/KID (needs the weights)")
    p.add_argument("--fid-weights", help="pytorch-fid's weights file (default: downloaded once)")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    options = p.add_argument_group("settings shared by every variant (override each method's defaults)")
    for flag, _, kwargs in CONFIG_FLAGS:
        if flag not in _NOT_SHARED:
            options.add_argument(flag, default=None, **kwargs)
    p.set_defaults(run=_ablate)


# Flags of `train` that an ablation does not share between its variants.
_NOT_SHARED = ("--model", "--fid-weights", "--evaluate-every")


def _ablate(args):
    from tfcyclegan import ablate

    settings = {
        target: getattr(args, _dest(flag))
        for flag, target, _ in CONFIG_FLAGS
        if flag not in _NOT_SHARED and getattr(args, _dest(flag), None) is not None
    }
    if args.variants == "list":
        for name in ablate.VARIANTS:
            print(f"{name}{'  (default)' if name in ablate.DEFAULT_VARIANTS else ''}")
        return EXIT_OK
    if args.variants is None:
        variants = ablate.DEFAULT_VARIANTS
    else:
        variants = tuple(v.strip() for v in args.variants.split(",") if v.strip())
    ablate.ablate(
        args.data, args.out, variants, settings=settings, fid=args.fid or bool(args.fid_weights),
        fid_weights=args.fid_weights, verbose=0 if args.quiet else 1,
    )
    print(f"Wrote {os.path.join(args.out, 'ablation.md')} and ablation.png")
    return EXIT_OK


# === check-data ===


def _add_check_data(subparsers):
    p = subparsers.add_parser(
        "check-data",
        help="find unreadable, truncated or oversized images before training",
        description="Decode every image once and list the files training could not read.",
    )
    p.add_argument("--data", help="dataset root (trainA/ trainB/ ...)")
    p.add_argument("--domain-a", help="folder of domain A images")
    p.add_argument("--domain-b", help="folder of domain B images")
    p.add_argument("--split", default="train", help="split of a dataset root: train or test")
    p.add_argument("--max-pixels", type=int, help="refuse images with more pixels than this")
    p.set_defaults(run=_check_data)


def _check_data(args):
    from tfcyclegan import data
    from tfcyclegan.config import DataConfig

    config = DataConfig() if args.max_pixels is None else DataConfig(max_pixels=args.max_pixels)
    domains = data.resolve_domains(data=args.data, domain_a=args.domain_a, domain_b=args.domain_b, split=args.split)
    ok = True
    for letter, source in zip("AB", domains):
        report = data.check_images(source.paths, config, progress=True)
        print(data.format_report(report, title=f"Domain {letter} ({source.name})"))
        ok = ok and report.ok
    return EXIT_OK if ok else EXIT_FAILED


# === import-torch ===


def _add_import_torch(subparsers):
    p = subparsers.add_parser(
        "import-torch",
        help="convert an authors' PyTorch generator (.pth, .npz, .safetensors) to .keras",
        description="Read a state_dict of the authors' CycleGAN/pix2pix code and save it as a Keras "
        "generator. The architecture is read from the keys; flags only confirm it.",
    )
    p.add_argument("path", help="latest_net_G.pth (or .npz / .safetensors with the same keys)")
    p.add_argument("--out", help="output .keras file (default: PATH with .keras)")
    p.add_argument("--netG", help=f"expected generator: {', '.join(GENERATORS)}")
    p.add_argument("--ngf", type=int, help="expected generator filters")
    p.add_argument("--norm", choices=NORMS, help="expected normalization")
    p.add_argument("--dropout", action=argparse.BooleanOptionalAction, default=None,
                   help="dropout layers (not visible in the keys; default: the reference's)")
    p.add_argument("--bn-statistics", choices=("image", "moving"), default="image",
                   help="batch-norm models: normalize each image by its own statistics, as the "
                   "authors' test.py does (image), or use the stored running averages (moving)")
    p.set_defaults(run=_import_torch)


def _import_torch(args):
    from tfcyclegan import torch_import

    overrides = {k: getattr(args, k) for k in ("netG", "ngf", "norm", "dropout") if getattr(args, k) is not None}
    _, out = torch_import.import_to_keras(args.path, args.out, bn_statistics=args.bn_statistics, **overrides)
    print(f"Saved {out}")
    return EXIT_OK


# === demo ===


def _add_demo(subparsers):
    p = subparsers.add_parser(
        "demo",
        help="train, export and use a small CycleGAN on a generated dataset (offline, a few minutes)",
    )
    p.add_argument("--out", default="demo_output", help="where everything goes (demo_output)")
    p.add_argument("--steps", type=int, help="training steps (default: the demo's)")
    p.add_argument("--size", type=int, help="image size (default: the demo's)")
    p.set_defaults(run=_demo)


def _demo(args):
    from tfcyclegan import demo

    result = demo.run_demo(args.out, steps=args.steps, size=args.size)
    return EXIT_INTERRUPTED if result.interrupted else EXIT_OK


# === main ===


def _global_flags(parser, default):
    """-v/--verbose and --debug; `default` is argparse.SUPPRESS after the command, so
    that a subcommand does not reset what was given before it."""
    parser.add_argument("-v", "--verbose", dest="show_logs", action="store_true", default=default,
                        help="show TensorFlow's own logs (hidden by default)")
    parser.add_argument("--debug", action="store_true", default=default,
                        help="on an error, show the traceback instead of a one-line message")


def build_parser():
    from tfcyclegan.version import __version__

    parser = argparse.ArgumentParser(
        prog="tfcyclegan",
        description="CycleGAN (Zhu et al. 2017) for TensorFlow / Keras 3.",
    )
    parser.add_argument("--version", action="version", version=f"tfcyclegan {__version__}")
    _global_flags(parser, default=False)
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (_add_train, _add_distill, _add_translate, _add_evaluate, _add_ablate, _add_export,
                _add_import_torch, _add_check_data, _add_demo):
        add(subparsers)
    for command in subparsers.choices.values():
        if command.prog.endswith(" train"):
            # `train --verbose N` is Keras's verbosity (the old spelling of
            # --progress); -v before the command shows TensorFlow's logs.
            command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                                 help="on an error, show the traceback")
        else:
            _global_flags(command, default=argparse.SUPPRESS)
    return parser


def quiet_tensorflow():
    """Hides TensorFlow's C++ start-up and converter logs and absl's INFO lines.

    Sets TF_CPP_MIN_LOG_LEVEL (unless the user has) before TensorFlow is
    imported; the lines TensorFlow prints while it loads, before its logging
    is set up, bypass that level, so standard error is closed for the import
    itself (an import error still surfaces as a Python exception).
    """
    from tfcyclegan import fileio

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if "tensorflow" not in sys.modules:
        with fileio.native_stderr_silenced():
            import tensorflow  # noqa: F401
    import absl.logging
    import tensorflow as tf

    absl.logging.set_verbosity(absl.logging.ERROR)
    tf.get_logger().setLevel("ERROR")


def _message(error):
    """The one-line (or few-line) message a user sees for `error`: no traceback."""
    text = str(error).strip()
    tf = sys.modules.get("tensorflow")
    if tf is not None and isinstance(error, tf.errors.OpError):
        # An op's message may carry the graph's node names and, for errors
        # raised in Python inside tf.data, the Python traceback: keep the error.
        lines = [line.strip() for line in (error.message or "").splitlines()]
        lines = [line for line in lines if line and not line.startswith(("Traceback", "File ", "[[", "\t"))]
        text = next((line for line in reversed(lines) if ":" in line), lines[0] if lines else type(error).__name__)
        text = text.split(" [[")[0]
    if isinstance(error, KeyError):
        text = f"missing key {text}"
    if not isinstance(error, (ValueError, OSError)) or not text:
        text = f"{type(error).__name__}: {text}" if text else type(error).__name__
    return text


def main(argv=None):
    """Runs `tfcyclegan ARGS`; returns the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # argparse: --help, --version or bad flags
        return exit_.code if isinstance(exit_.code, int) else EXIT_USAGE
    debug = getattr(args, "debug", False)
    try:
        if not getattr(args, "show_logs", False):
            quiet_tensorflow()
        return args.run(args)
    except KeyboardInterrupt:
        print(f"tfcyclegan {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as error:  # every failure: one message, no traceback (unless --debug)
        if debug:
            raise
        hint = "" if isinstance(error, (ValueError, OSError)) else " (--debug shows the traceback)"
        print(f"tfcyclegan {args.command}: error: {_message(error)}{hint}", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
