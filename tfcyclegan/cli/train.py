"""The commands that train: `train`, `distill` and `ablate`."""

import os

from tfcyclegan.cli import args as shared
from tfcyclegan.cli.args import EXIT_INTERRUPTED, EXIT_OK
from tfcyclegan.config import DISTILL_LOSSES, PRESETS
from tfcyclegan.distillation import STUDENTS

# === train ===


def add_train(subparsers):
    p = subparsers.add_parser(
        "train",
        help="train a CycleGAN (unpaired) or pix2pix (paired) model",
        description="Train with model.fit. Defaults are the papers' settings (--method picks the method).",
    )
    shared.add_data_source(p, "data (one of)",
                           data_help="dataset root: trainA/ trainB/ (testA/ testB/); for pix2pix the aligned "
                           "layout train/ (val/ test/) of A|B images; or tfds:<name>")
    run = shared.add_run(p, name_help="run name: the folder RUNS_DIR/NAME (default: from the data)",
                         resume_help="continue a run from its latest checkpoint")
    run.add_argument("--config", help="a config.json to start from (flags override it)")
    run.add_argument("--preset", choices=PRESETS,
                     help="starting settings: paper (default: the method's published ones), recommended "
                     "(what docs/quality.md measured better on both its benchmarks) or look (CycleGAN: "
                     "the per-pixel colour mode for grades and film looks, exports a .cube)")
    run.add_argument("--image-size", type=int, help="preset: 256 (9 blocks, load 286) or 128 (6 blocks, load 143)")
    shared.add_progress(run)
    shared.add_config_flags(p, "settings (override the config)")
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
        config = shared.config_from_args(args, base=training.load_run_config(args.resume))
        spec = shared.data_spec(args, required=False)
        run_dir = args.resume
    else:
        config = shared.config_from_args(args)
        spec = shared.data_spec(args, required=True)
        run_dir = os.path.join(args.runs_dir, args.name or _default_run_name(spec))
    result = training.train(config, run_dir, data_spec=spec, resume=bool(args.resume), verbose=args.progress)
    return EXIT_INTERRUPTED if result.interrupted else EXIT_OK


# === distill ===

# Flags of `train` that a student run does not take: its method, generator and
# channels come from `distill`'s own flags and the teacher; it has no cycle,
# identity, L1, NCE term or image pool; `--direction` is the teacher's.
_NOT_FOR_DISTILL = (
    "--method", "--netG", "--ngf", "--input-nc", "--output-nc", "--conditional", "--dropout",
    "--direction", "--lambda-a", "--lambda-b", "--lambda-identity", "--lambda-l1", "--lambda-nce",
    "--nce-layers", "--lambda-gan", "--pool-size", "--evaluate-every", "--fid-weights",
)


def add_distill(subparsers):
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
    shared.add_checkpoint_flags(teacher, whose="the teacher's", example="ckpt-1200 (default: its newest state)",
                                dest_prefix="teacher_")
    shared.add_direction(teacher, default=None, dest="teacher_direction",
                         help="the teacher's direction to learn: a2b (G, default) or b2a (F, CycleGAN); "
                         "the authors' AtoB/BtoA are accepted")
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
    shared.add_data_source(p, "data (default: the teacher's)", data_help="dataset root (as train's --data)")
    run = shared.add_run(p, name_help="run name: the folder RUNS_DIR/NAME (default: TEACHER_student)",
                         resume_help="continue a student run from its latest checkpoint")
    shared.add_progress(run)
    shared.add_config_flags(p, "settings (default: the teacher's data and schedule; as in train)",
                            leave_out=_NOT_FOR_DISTILL)
    p.set_defaults(run=_distill)


def _distill(args):
    from tfcyclegan import distillation, training

    objective = dict(loss=args.loss, lambda_distill=args.lambda_distill, lambda_feature=args.lambda_feature)
    if args.resume:
        if args.teacher or args.teacher_checkpoint or args.teacher_epoch or args.teacher_direction:
            raise ValueError(
                "--resume continues a student run with its own teacher; drop --teacher, "
                "--checkpoint, --epoch and --direction."
            )
        base = distillation.resumed_student_config(
            args.resume, student=args.student, n_blocks=args.n_blocks,
            **{k: v for k, v in objective.items() if v is not None},
        )
        config = shared.config_from_args(args, base=base)
        spec = shared.data_spec(args, required=False)
        run_dir = args.resume
    else:
        if not args.teacher:
            raise ValueError("Name the trained run to learn from: --teacher RUN_DIR.")
        given = dict(objective, direction=args.teacher_direction, student=args.student, ngf=args.ngf,
                     n_blocks=args.n_blocks, lambda_gan=args.lambda_gan, checkpoint=args.teacher_checkpoint,
                     epoch=args.teacher_epoch)
        base = distillation.student_config(args.teacher, **{k: v for k, v in given.items() if v is not None})
        config = shared.config_from_args(args, base=base)
        spec = shared.data_spec(args, required=False) or distillation.teacher_data_spec(args.teacher)
        name = args.name or os.path.basename(os.path.normpath(args.teacher)) + "_student"
        run_dir = os.path.join(args.runs_dir, name)
    result = training.train(config, run_dir, data_spec=spec, resume=bool(args.resume), verbose=args.progress)
    return EXIT_INTERRUPTED if result.interrupted else EXIT_OK


# === ablate ===

# Flags of `train` that an ablation does not share between its variants.
_NOT_SHARED = ("--method", "--fid-weights", "--evaluate-every")


def add_ablate(subparsers):
    p = subparsers.add_parser(
        "ablate",
        help="the paper's ablation study: train and evaluate each variant with the same budget",
        description="Train each variant (CycleGAN and its ablations, pix2pix) on a paired dataset with "
        "the same budget and seed, evaluate each on the test split, and write ablation.md and "
        "ablation.png. `--variants list` names the variants.",
    )
    p.add_argument("--data", required=True, help="paired dataset root (aligned layout: train/ test/)")
    shared.add_out(p, default="ablation", help="the study's folder (ablation)")
    # (Not listed here: that would import tfcyclegan.ablate, and TensorFlow, for --help.)
    p.add_argument("--variants", help="comma-separated variant names, or `list` to print them "
                                      "(default: the paper's study)")
    p.add_argument("--fid", action="store_true", help="also compute FID/KID (needs the weights)")
    p.add_argument("--fid-weights", help="pytorch-fid's weights file (default: downloaded once)")
    shared.add_progress(p, help="0: quiet; 1 or 2: a line per variant with the time to go (1)")
    p.add_argument("--quiet", dest="progress", action=shared.OldSpelling, new="--progress", value=0)
    shared.add_config_flags(p, "settings shared by every variant (override each method's defaults)",
                            leave_out=_NOT_SHARED)
    p.set_defaults(run=_ablate)


def _ablate(args):
    from tfcyclegan import ablate

    if args.variants == "list":
        for name in ablate.VARIANTS:
            print(f"{name}{'  (default)' if name in ablate.DEFAULT_VARIANTS else ''}")
        return EXIT_OK
    if args.variants is None:
        variants = ablate.DEFAULT_VARIANTS
    else:
        variants = tuple(v.strip() for v in args.variants.split(",") if v.strip())
    ablate.ablate(
        args.data, args.out, variants, settings=shared.config_settings(args, leave_out=_NOT_SHARED),
        fid=args.fid or bool(args.fid_weights), fid_weights=args.fid_weights, verbose=int(args.progress > 0),
    )
    print(f"Wrote {os.path.join(args.out, 'ablation.md')} and ablation.png")
    return EXIT_OK
