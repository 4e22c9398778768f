"""The `tfcyclegan` command: a thin layer over the library.

    tfcyclegan train --data horse2zebra/ --name h2z
    tfcyclegan train --method pix2pix --data facades/ --direction b2a
    tfcyclegan train --resume runs/h2z
    tfcyclegan distill --teacher runs/h2z --student mobile_resnet --ngf 32
    tfcyclegan translate --model runs/h2z --input photos/ --out zebras/
    tfcyclegan export --model runs/h2z --out exported/
    tfcyclegan app --model runs/h2z
    tfcyclegan import-torch horse2zebra.pth --out G.keras
    tfcyclegan pretrained list
    tfcyclegan translate --model pretrained:horse2zebra --input photos/ --out zebras/
    tfcyclegan check-data --data horse2zebra/
    tfcyclegan demo

One word, one meaning (tfcyclegan/cli/args.py): `--method` names a method,
`--model` is an artifact, `--out` is what a command writes, `--direction` is
a2b/b2a (AtoB/BtoA accepted), `--progress 0|1|2` is Keras's verbosity.

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

from tfcyclegan.cli import tools, train, use
from tfcyclegan.cli.args import (
    CONFIG_FLAGS,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    Verbose,
    config_from_args,
    default_progress,
    resolve_model_artifact,
)

# The commands, in the order `tfcyclegan --help` lists them.
_COMMANDS = (train.add_train, train.add_distill, use.add_translate, use.add_evaluate, train.add_ablate,
             use.add_export, use.add_app, tools.add_import_torch, tools.add_pretrained, tools.add_check_data, tools.add_demo)


def _global_flags(parser, default, verbose_action="store_true"):
    """-v/--verbose and --debug; `default` is argparse.SUPPRESS after the command, so
    that a subcommand does not reset what was given before it."""
    parser.add_argument("-v", "--verbose", dest="show_logs", action=verbose_action, default=default,
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
    for add in _COMMANDS:
        add(subparsers)
    for name, command in subparsers.choices.items():
        # After `train`, `--verbose N` is still read as the old spelling of
        # `--progress N` (with a note); `--verbose` alone shows TensorFlow's logs.
        _global_flags(command, default=argparse.SUPPRESS, verbose_action=Verbose if name == "train" else "store_true")
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
    if getattr(args, "progress", 0) is None:
        args.progress = default_progress()
    debug = getattr(args, "debug", False)
    try:
        if not getattr(args, "show_logs", False):
            quiet_tensorflow()
        resolve_model_artifact(args)
        return args.run(args)
    except KeyboardInterrupt:
        print(f"tfcyclegan {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as error:  # every failure: one message, no traceback (unless --debug)
        if debug:
            raise
        from tfcyclegan.fileio import FolderInUseError

        hint = "" if isinstance(error, (ValueError, OSError, FolderInUseError)) else " (--debug shows the traceback)"
        print(f"tfcyclegan {args.command}: error: {_message(error)}{hint}", file=sys.stderr)
        return EXIT_FAILED


__all__ = ["CONFIG_FLAGS", "EXIT_FAILED", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_USAGE", "build_parser",
           "config_from_args", "main"]
