"""The flags several commands share, defined once: one word, one meaning.

- `--method NAME` names a method; `--model PATH` is always an artifact (a run
  folder, `.keras` file, SavedModel or `.tflite` file).
- `--out` is what a command writes.
- `--direction` reads a2b / b2a (and `both` where a command can do both), with
  the authors' AtoB / BtoA and the paper's x2y / y2x accepted in any case.
- `--progress 0|1|2` is Keras's verbosity; `-v/--verbose` shows TensorFlow's
  own logs (see `tfcyclegan.cli.main`).

Old spellings (`train --model NAME`, `translate --output`, `train --verbose N`,
`ablate --quiet`) still work for this release and print a one-line note.
Importing this module imports no TensorFlow, so `--help` answers at once.
"""

import argparse
import os
import sys

from tfcyclegan.config import (
    DISCRIMINATORS,
    GAN_MODES,
    GENERATORS,
    INIT_TYPES,
    METHODS,
    MIXED_PRECISION,
    NORMS,
    PREPROCESS_MODES,
    STRATEGIES,
    UPSAMPLE_MODES,
    Config,
    data_direction,
    for_image_size,
    parse_direction,
)

# The command's exit codes: done, failed (a one-line message says why), bad
# flags, stopped by Ctrl-C (after saving).
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

# === value types (argparse names the flag in their errors) ===


def int_list(text):
    """`"0,4,8"` as (0, 4, 8)."""
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, e.g. 0,4,8,12,16; got {text!r}"
        ) from None


def size_pair(text):
    """`"256x192"` as (256, 192)."""
    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HEIGHTxWIDTH, e.g. 256x256; got {text!r}") from None
    return height, width


def _as_type(parse, name):
    """`parse` as an argparse type: its ValueError becomes argparse's usage error."""
    def convert(text):
        try:
            return parse(text)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None
    convert.__name__ = name  # argparse shows it in "invalid <name> value"
    return convert


direction = _as_type(parse_direction, "direction")
direction_or_both = _as_type(lambda text: parse_direction(text, allow_both=True), "direction")
# The data pipeline's `--direction` (which side of a pair is x) is read the same
# way, then stored in DataConfig's spelling, AtoB / BtoA.
pair_direction = _as_type(data_direction, "direction")

# === old spellings ===

OLD_SPELLING_NOTE = "note: {old} is now {new}; the old spelling goes in the next release"


def note_old_spelling(old, new):
    """Prints the one-line note that `old` is now spelled `new` (standard error)."""
    print(OLD_SPELLING_NOTE.format(old=old, new=new), file=sys.stderr)


class OldSpelling(argparse.Action):
    """An old flag that still works for one release: it sets the new flag's value and says so.

    `new` is the flag's new spelling; `value` (if given) is what the old flag
    means when it takes no value (e.g. `--quiet` is `--progress 0`).
    """

    def __init__(self, option_strings, dest, new, value=None, **kwargs):
        self.new, self.value = new, value
        if value is not None:
            kwargs["nargs"] = 0
        super().__init__(option_strings, dest, help=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        if self.value is None:
            note_old_spelling(f"{option_string} {values}", f"{self.new} {values}")
            setattr(namespace, self.dest, values)
        else:
            note_old_spelling(option_string, f"{self.new} {self.value}")
            setattr(namespace, self.dest, self.value)


class Verbose(argparse.Action):
    """`-v/--verbose` after `train`: TensorFlow's logs, or (old spelling) `--verbose N` = `--progress N`."""

    def __init__(self, option_strings, dest, **kwargs):
        super().__init__(option_strings, dest, nargs="?", type=int, choices=(0, 1, 2), metavar="N", **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        if values is None:
            namespace.show_logs = True
            return
        note_old_spelling(f"{option_string} {values}", f"--progress {values}")
        namespace.progress = values


# === argument groups ===


def add_model_artifact(parser, help="a run folder, .keras file, SavedModel, .tflite or .onnx"):
    """`--model PATH` (required): the artifact a command reads (`resolve_model_artifact` reads it)."""
    parser.add_argument("--model", required=True, metavar="PATH",
                        help=f"{help}; or pretrained:NAME, a generator the authors publish "
                        "(tfcyclegan pretrained list), downloaded and converted on first use")


def resolve_model_artifact(args):
    """`--model pretrained:NAME` as the cached .keras file (fetched on first use): the one
    place every command's `--model` passes through (`tfcyclegan.cli.main`, before the command)."""
    if isinstance(getattr(args, "model", None), str):
        from tfcyclegan import pretrained

        args.model = os.fspath(pretrained.resolve_model(args.model, progress=True))


def add_out(parser, help, required=False, default=None, old=()):
    """`--out`: what the command writes; `old` lists old spellings still accepted (with a note)."""
    if not old:
        parser.add_argument("--out", required=required, default=default, help=help)
        return
    # A required flag with an alias: argparse checks `required` per spelling, so the
    # spellings form a required group (the old ones hidden from --help).
    group = parser.add_mutually_exclusive_group(required=required)
    group.add_argument("--out", default=default, help=help)
    for flag in old:
        group.add_argument(flag, dest="out", action=OldSpelling, new="--out")


def add_direction(parser, default="a2b", both=False, dest="direction", help=None):
    """`--direction`: a2b (G) or b2a (F), `both` where the command can; AtoB/BtoA accepted."""
    choices = "a2b,b2a,both" if both else "a2b,b2a"
    parser.add_argument("--direction", dest=dest, default=default, type=direction_or_both if both else direction,
                        metavar=f"{{{choices}}}",
                        help=help or f"a2b: A -> B (G), b2a: B -> A (F){', both: each' if both else ''}; "
                        f"the authors' AtoB/BtoA are accepted (default {default})")


def add_progress(parser, help="Keras fit verbosity: 0 silent, 1 progress bar, 2 a line per epoch "
                 "(default: 1 on a terminal, 2 when the output goes to a file or pipe)"):
    """`--progress 0|1|2`: how much a command that trains prints (None until `default_progress`)."""
    parser.add_argument("--progress", type=int, default=None, choices=(0, 1, 2), help=help)


def default_progress(stream=None):
    """1 (Keras's progress bar) on a terminal; 2 (a plain line per epoch) elsewhere: the
    bar redraws itself with carriage returns and ANSI colour codes, which a log file keeps."""
    stream = sys.stdout if stream is None else stream
    return 1 if getattr(stream, "isatty", lambda: False)() else 2


def add_data_source(parser, title, data_help="dataset root", tfds=True):
    """`--data ROOT`, `--domain-a DIR --domain-b DIR` (and `--tfds NAME`): where the images are."""
    group = parser.add_argument_group(title)
    group.add_argument("--data", help=data_help)
    group.add_argument("--domain-a", help="folder of domain A (X) images (pix2pix: pairs by file name)")
    group.add_argument("--domain-b", help="folder of domain B (Y) images")
    if tfds:
        group.add_argument("--tfds", help="TFDS dataset, e.g. cycle_gan/horse2zebra (needs a network)")
    return group


def add_run(parser, name_help, resume_help):
    """`--name`, `--runs-dir`, `--resume`: the run folder a training command writes."""
    group = parser.add_argument_group("run")
    group.add_argument("--name", help=name_help)
    group.add_argument("--runs-dir", default="runs", help="where run folders go (runs)")
    group.add_argument("--resume", metavar="RUN_DIR", help=resume_help)
    return group


def add_checkpoint_flags(group, whose="a run's", example="ckpt-1200 or epoch-60", dest_prefix=""):
    """--checkpoint NAME or --epoch N (one of), in `group`: which saved state of a run folder to load.

    Their values land in `args.<dest_prefix>checkpoint` and `args.<dest_prefix>epoch`.
    """
    choice = group.add_mutually_exclusive_group()
    choice.add_argument("--checkpoint", dest=f"{dest_prefix}checkpoint", metavar="NAME",
                        help=f"{whose} checkpoint, e.g. {example}")
    choice.add_argument("--epoch", dest=f"{dest_prefix}epoch", type=int, metavar="N",
                        help=f"{whose} checkpoint of epoch N")


def add_run_state(parser):
    """The `--checkpoint`/`--epoch` group of commands that read a run folder as an artifact."""
    add_checkpoint_flags(parser.add_argument_group("run folders (default: the newest state)"))


# === config flags ===

# Flags that set a config field: (flag, "section.field", argparse kwargs).
# Defaults stay None so that only flags the user gives override the config.
CONFIG_FLAGS = (
    ("--method", "model.method", dict(choices=METHODS, help="cyclegan (unpaired, default), cut or fastcut "
                                                            "(unpaired, one generator), pix2pix (aligned pairs); "
                                                            "each starts from its authors' defaults")),
    ("--netG", "model.generator", dict(metavar="NAME", help=f"generator: {', '.join(GENERATORS)} or (mobile_)resnet_<n>blocks")),
    ("--ngf", "model.ngf", dict(type=int, help="generator filters in the first layer (64)")),
    ("--ndf", "model.ndf", dict(type=int, help="discriminator filters in the first layer (64)")),
    ("--netD", "model.discriminator", dict(choices=DISCRIMINATORS, help="basic = 70x70 PatchGAN")),
    ("--n-layers-d", "model.n_layers_d", dict(type=int, help="PatchGAN layers with --netD n_layers")),
    ("--norm", "model.norm", dict(choices=NORMS)),
    ("--norm-d", "model.d_norm", dict(choices=NORMS, help="the discriminators' norm when not --norm's")),
    ("--dropout", "model.dropout", dict(action=argparse.BooleanOptionalAction, help="dropout in the generators")),
    ("--init-type", "model.init_type", dict(choices=INIT_TYPES)),
    ("--upsample", "model.upsample", dict(choices=UPSAMPLE_MODES, help="ResNet generator upsampling: transpose "
                                                                      "(paper), resize_conv or antialias (no checkerboard)")),
    ("--global-skip", "model.global_skip", dict(action=argparse.BooleanOptionalAction,
                                                help="ResNet generators start as the identity: output = input + "
                                                "a change, clipped (keeps content; for subtle looks)")),
    ("--color-branch", "model.color_branch", dict(action=argparse.BooleanOptionalAction,
                                                  help="with --global-skip: add a per-pixel colour change "
                                                  "(1x1 convolutions, no norm) to the output")),
    ("--init-gain", "model.init_gain", dict(type=float)),
    ("--input-nc", "model.input_channels", dict(type=int, help="channels of domain A images")),
    ("--output-nc", "model.output_channels", dict(type=int, help="channels of domain B images")),
    ("--conditional", "model.conditional", dict(action=argparse.BooleanOptionalAction,
                                                help="pix2pix: D judges (x, y) (default) or y alone")),
    ("--load-size", "data.load_size", dict(type=int, help="resize to this before cropping (286)")),
    ("--crop-size", "data.crop_size", dict(type=int, help="training image size (256)")),
    ("--preprocess", "data.preprocess", dict(choices=PREPROCESS_MODES)),
    ("--flip", "data.flip", dict(action=argparse.BooleanOptionalAction, help="random horizontal flips")),
    ("--direction", "data.direction", dict(type=pair_direction, metavar="{a2b,b2a}",
                                           help="a2b (default) learns A -> B; b2a swaps the sides "
                                           "(the authors' AtoB/BtoA are accepted)")),
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
    ("--nce-layers", "model.nce_layers", dict(type=int_list, metavar="I,J,...",
                                              help="CUT: encoder layers PatchNCE compares, the authors' "
                                              "indices (0,4,8,12,16); fewer blocks need smaller ones")),
    ("--diff-augment", "train.diff_augment", dict(metavar="POLICY", help="augment what D sees (DiffAugment): "
                                                  "color,translation,cutout or a subset; leave out color for "
                                                  "colour looks")),
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


def dest(flag):
    return flag.lstrip("-").replace("-", "_")


def add_config_flags(parser, title, leave_out=()):
    """The CONFIG_FLAGS, but those in `leave_out`, as one group of `parser`."""
    group = parser.add_argument_group(title)
    for flag, _, kwargs in CONFIG_FLAGS:
        if flag not in leave_out:
            group.add_argument(flag, default=None, **kwargs)
    if "--method" not in leave_out:
        # `train --model NAME`, the old spelling of `--method NAME` (for one release).
        group.add_argument("--model", dest="method", choices=METHODS, action=OldSpelling, new="--method")
    return group


def config_settings(args, leave_out=()):
    """{"section.field": value} of the config flags given (those in `leave_out` aside)."""
    return {
        target: getattr(args, dest(flag))
        for flag, target, _ in CONFIG_FLAGS
        if flag not in leave_out and getattr(args, dest(flag), None) is not None
    }


def method_defaults(method, preset):
    """The starting Config of `method` (None: cyclegan) with `preset`.

    The one place the CLI turns a method's name into its settings.
    """
    return Config.for_method(method or "cyclegan", preset=preset or "paper")


def config_from_args(args, base=None):
    """The Config that `base` (or --config, or the method's defaults) and the flags describe."""
    if base is None:
        preset = getattr(args, "preset", None)
        if getattr(args, "config", None):
            if preset:
                raise ValueError(f"--config and --preset both pick the starting settings; give one. "
                                 f"Received: --config {args.config} --preset {preset}")
            base = Config.load(args.config)
        else:
            base = method_defaults(getattr(args, "method", None), preset)
    if getattr(args, "image_size", None) is not None:
        base = for_image_size(base, args.image_size)
    sections = base.to_dict()  # every section it has (a student run also has `distill`)
    for target, value in config_settings(args).items():
        section, field = target.split(".")
        sections[section][field] = value
    return Config.from_dict(sections)


def data_spec(args, required):
    """The DataSpec of the data flags, or None when none is given (and not `required`)."""
    from tfcyclegan.training import DataSpec

    given = dict(data=args.data, domain_a=args.domain_a, domain_b=args.domain_b, tfds=args.tfds)
    if all(value is None for value in given.values()):
        if required:
            raise ValueError("Say where the images are: --data ROOT, --domain-a DIR --domain-b DIR, or --tfds NAME.")
        return None
    return DataSpec(**given)
