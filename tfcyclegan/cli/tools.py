"""The commands around training: `check-data`, `import-torch`, `pretrained` and `demo`."""

import argparse

from tfcyclegan.cli import args as shared
from tfcyclegan.cli.args import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK
from tfcyclegan.config import GENERATORS, NORMS

# === check-data ===


def add_check_data(subparsers):
    p = subparsers.add_parser(
        "check-data",
        help="find unreadable, truncated or oversized images before training",
        description="Decode every image once and list the files training could not read.",
    )
    shared.add_data_source(p, "data (one of)", data_help="dataset root (trainA/ trainB/ ...)", tfds=False)
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


def add_import_torch(subparsers):
    p = subparsers.add_parser(
        "import-torch",
        help="convert an authors' PyTorch generator (.pth, .npz, .safetensors) to .keras",
        description="Read a state_dict of the authors' CycleGAN/pix2pix code and save it as a Keras "
        "generator. The architecture is read from the keys; flags only confirm it.",
    )
    p.add_argument("path", help="latest_net_G.pth (or .npz / .safetensors with the same keys)")
    shared.add_out(p, help="output .keras file (default: PATH with .keras)")
    p.add_argument("--netG", help=f"expected generator: {', '.join(GENERATORS)}")
    p.add_argument("--ngf", type=int, help="expected generator filters")
    p.add_argument("--norm", choices=NORMS, help="expected normalization")
    p.add_argument("--dropout", action=argparse.BooleanOptionalAction, default=None,
                   help="dropout layers (not visible in the keys; default: the reference's)")
    p.add_argument("--bn-statistics", choices=("image", "moving"), default="image",
                   help="batch-norm models: normalize each image by its own statistics, as the "
                   "authors' test.py does (image), or use the stored running averages (moving)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    p.set_defaults(run=_import_torch)


def _import_torch(args):
    from tfcyclegan import torch_import

    overrides = {k: getattr(args, k) for k in ("netG", "ngf", "norm", "dropout") if getattr(args, k) is not None}
    _, out = torch_import.import_to_keras(
        args.path, args.out, overwrite=args.overwrite, bn_statistics=args.bn_statistics, **overrides
    )
    print(f"Saved {out}")
    return EXIT_OK


# === pretrained ===


def add_pretrained(subparsers):
    p = subparsers.add_parser(
        "pretrained",
        help="the authors' published CycleGAN / pix2pix generators by name (--model pretrained:NAME)",
        description="list: the generators the authors publish (what they do, architecture, licence). "
        "get NAME: download one (resuming a stopped download), check it and convert it into the "
        "cache, once. Any --model also takes pretrained:NAME, which does the same on first use.",
    )
    p.add_argument("action", choices=("list", "get"), help="list, or get NAME")
    p.add_argument("name", nargs="?", help="get: e.g. horse2zebra, or pix2pix/sat2map where both "
                   "methods publish a name")
    p.add_argument("--cache-dir", metavar="DIR", help="the cache (default: $TFCYCLEGAN_PRETRAINED_DIR, "
                   "else ~/.keras/tfcyclegan/pretrained, under $KERAS_HOME if set)")
    p.set_defaults(run=_pretrained)


def _pretrained(args):
    from tfcyclegan import pretrained

    if args.action == "list":
        if args.name is not None:
            raise ValueError(f"`pretrained list` takes no name. Received: {args.name!r}")
        print(pretrained.format_table(cache_dir=args.cache_dir))
        return EXIT_OK
    if args.name is None:
        raise ValueError("Say which generator: tfcyclegan pretrained get NAME (tfcyclegan pretrained list "
                         "shows the names).")
    print(pretrained.get(args.name, cache_dir=args.cache_dir, progress=True))
    return EXIT_OK


# === demo ===


def add_demo(subparsers):
    p = subparsers.add_parser(
        "demo",
        help="train, export and use a small CycleGAN on a generated dataset (offline, a few minutes)",
    )
    shared.add_out(p, default="demo_output", help="where everything goes (demo_output)")
    p.add_argument("--steps", type=int, help="training steps (default: the demo's)")
    p.add_argument("--size", type=int, help="image size (default: the demo's)")
    shared.add_progress(p, help="0: quiet; 1: the steps and a progress bar; 2: a line per epoch (1)")
    p.set_defaults(run=_demo)


def _demo(args):
    from tfcyclegan import demo

    result = demo.run_demo(args.out, steps=args.steps, size=args.size, verbose=args.progress)
    return EXIT_INTERRUPTED if result.interrupted else EXIT_OK
