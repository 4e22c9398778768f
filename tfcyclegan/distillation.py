"""`tfcyclegan distill`: a phone-sized student run, trained from a trained teacher run.

    config = student_config("runs/h2z", student="mobile_resnet", ngf=32)
    result = training.train(config, "runs/h2z_student", teacher_data_spec("runs/h2z"))

A student run is an ordinary run folder (checkpoints, resume, samples,
TensorBoard, `model.keras`) whose model is a `models.Distill`: the teacher's
generator, frozen, and a student generator learning its outputs. `export`,
`translate` and `evaluate` take the folder and use the student alone.

The student inherits from the teacher run what must agree with it (image
channels, crop size and the rest of the data settings, the schedule's
length, the optimizer); its own are the architecture and the objective.
"""

import os

from tfcyclegan import methods
from tfcyclegan.checks import check_int
from tfcyclegan.config import (
    Config,
    DistillConfig,
    TrainConfig,
    check_choice,
    parse_direction,
    parse_generator,
)

STUDENTS = ("resnet", "mobile_resnet")
"""Student families: `ResnetGenerator` (fewer filters and blocks) or `MobileResnetGenerator`."""


def student_config(
    teacher,
    direction="a2b",
    student="mobile_resnet",
    ngf=32,
    n_blocks=9,
    loss="l1",
    lambda_distill=10.0,
    lambda_feature=0.0,
    lambda_gan=0.0,
    checkpoint=None,
    epoch=None,
):
    """The `Config` of a student of the run folder `teacher`.

    Args:
        teacher: the teacher's run folder (recorded as an absolute path).
        direction: the teacher's direction the student learns, `a2b` or `b2a`.
        student: `mobile_resnet` (depthwise-separable blocks, GAN
            Compression's) or `resnet` (the paper's blocks, fewer filters).
        ngf: the student's first-layer filters (the teacher's is usually 64).
        n_blocks: the student's residual blocks.
        loss: `l1` or `l2` distance to the teacher's output.
        lambda_distill: weight of that distance (10).
        lambda_feature: weight of matching residual-block features through
            1x1 adapters (0: off).
        lambda_gan: weight of a GAN term with a PatchGAN on the real target
            images (0: off).
        checkpoint: the teacher's checkpoint (`ckpt-N`, `epoch-N`); None for
            its newest state.
        epoch: or the teacher's checkpoint of this epoch.

    Returns:
        A `Config` with method `distill`; flags (e.g. `cli.config_from_args`)
        may change its data and training settings afterwards.

    Raises:
        FileNotFoundError: `teacher` is missing or not a run folder.
        ValueError: any argument out of range (named with its value).
    """
    from tfcyclegan import runs

    if not isinstance(teacher, (str, os.PathLike)) or not os.fspath(teacher):
        raise ValueError(f"`teacher` must be a run folder's path. Received: teacher={teacher!r}")
    teacher = os.path.abspath(os.fspath(teacher))
    if not runs.is_run_folder(teacher):
        what = "does not exist" if not os.path.exists(teacher) else f"has no {runs.CONFIG_FILE}"
        raise FileNotFoundError(
            f"The teacher {teacher} {what}: pass the run folder of a trained model "
            f"(runs/NAME, as `tfcyclegan train` made it). Received: teacher={teacher!r}"
        )
    check_choice("student", student, STUDENTS)
    ngf = check_int("ngf", ngf, 1)
    n_blocks = check_int("n_blocks", n_blocks, 0)
    taught = runs.load_run_config(teacher)
    if methods.method(taught.model.method).data == methods.TEACHER:
        raise ValueError(
            f"The teacher {teacher} is itself a student (a distill run); distill from the run "
            f"it learned from: {taught.distill.teacher}. Received: teacher={teacher!r}"
        )
    # Checked now, before a student run folder is written: the teacher has weights.
    chosen = runs.select_checkpoint(teacher, checkpoint, epoch)
    if chosen is None and not os.path.isfile(runs.RunPaths(teacher).model):
        raise FileNotFoundError(
            f"The teacher {teacher} has neither checkpoints nor {runs.MODEL_FILE}: it has not "
            f"trained yet. Received: teacher={teacher!r}"
        )
    distill = DistillConfig(
        teacher=teacher,
        teacher_method=taught.model.method,
        teacher_checkpoint=checkpoint,
        teacher_epoch=epoch,
        direction=parse_direction(direction),
        loss=loss,
        lambda_distill=lambda_distill,
        lambda_feature=lambda_feature,
    )
    model = taught.model.replace(
        method="distill", generator=f"{student}_{n_blocks}blocks", ngf=ngf, dropout=False
    )
    t = taught.train
    # The teacher's schedule and optimizer; no image pool (D, if any, sees the
    # student's current outputs); the student's GAN weight.
    train = TrainConfig(
        gan_mode=t.gan_mode, lambda_gan=lambda_gan, pool_size=0, learning_rate=t.learning_rate,
        beta_1=t.beta_1, beta_2=t.beta_2, epochs=t.epochs, epochs_decay=t.epochs_decay,
        steps_per_epoch=t.steps_per_epoch,
    )
    return Config(model=model, data=taught.data, train=train, distill=distill)


def resumed_student_config(run_dir, student=None, n_blocks=None, **distill_changes):
    """The `Config` a stopped student run continues with, changed where asked.

    Args:
        run_dir: the student's run folder (`tfcyclegan distill` made it).
        student: a new student family (`resnet`, `mobile_resnet`), or None to keep it.
        n_blocks: a new number of residual blocks, or None to keep it. (Training
            refuses an architecture its checkpoints do not fit, and says so.)
        **distill_changes: fields of its `DistillConfig` to change, e.g.
            `loss="l2"` or `lambda_feature=1.0`.

    Returns:
        The run's `Config` with those changes.

    Raises:
        ValueError: `run_dir` is a run of another kind (it resumes with
            `tfcyclegan train --resume`).
    """
    from tfcyclegan import runs

    config = runs.load_run_config(run_dir)
    if config.distill is None:
        raise ValueError(
            f"{run_dir} is a {config.model.method} run, not a student run: resume it with "
            f"`tfcyclegan train --resume {run_dir}`. Received: run_dir={os.fspath(run_dir)!r}"
        )
    if student is not None:
        check_choice("student", student, STUDENTS)
    model = config.model
    if student is not None or n_blocks is not None:
        family, blocks = parse_generator(model.generator)
        model = model.replace(generator=f"{student or family}_{blocks if n_blocks is None else n_blocks}blocks")
    return config.replace(model=model, distill=config.distill.replace(**distill_changes))


def teacher_data_spec(teacher):
    """The `DataSpec` the teacher run trained on (its `run.json`): a student's default data."""
    from tfcyclegan import runs
    from tfcyclegan.training import DataSpec

    data = runs.read_run_info(teacher)["data"]
    try:
        return DataSpec(**data)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{runs.RunPaths(os.fspath(teacher)).run} does not name its data: {error}") from None


def distill(teacher, run_dir, data_spec=None, verbose="auto", **options):
    """Trains a student of `teacher` in the run folder `run_dir`; returns the `TrainResult`.

    `options` are `student_config`'s. Without `data_spec` the student trains
    on the teacher's own data. Resume a stopped student with
    `training.train(runs.load_run_config(run_dir), run_dir, resume=True)`.
    """
    from tfcyclegan import training

    config = student_config(teacher, **options)
    data_spec = data_spec if data_spec is not None else teacher_data_spec(teacher)
    return training.train(config, run_dir, data_spec=data_spec, verbose=verbose)


__all__ = ["STUDENTS", "distill", "resumed_student_config", "student_config", "teacher_data_spec"]
