"""Writes the `config.json` files of tests/test_runs.py: one run folder's config per method,
as tfcyclegan wrote them at f8ad326 (before the structure change of #26), so that a later
config format is tested against files that real run folders hold.

Kept for the record: it ran once, on that commit.
    git worktree add /tmp/old f8ad326 && cd /tmp/old && \
        python tests/data/run_configs/make_configs.py OUT_DIR
"""

import pathlib
import sys
import tempfile

from tfcyclegan import distillation
from tfcyclegan.config import Config


def main(out):
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    configs = {
        "cyclegan": Config.for_method("cyclegan"),
        "cyclegan_recommended": Config.for_method("cyclegan", "recommended"),
        "pix2pix": Config.for_method("pix2pix"),
        "cut": Config.for_method("cut"),
        "fastcut": Config.for_method("fastcut"),
    }
    with tempfile.TemporaryDirectory() as teacher:
        # A teacher run folder as far as student_config looks: its config and a checkpoint.
        configs["cyclegan"].save(pathlib.Path(teacher) / "config.json")
        (pathlib.Path(teacher) / "checkpoints").mkdir()
        (pathlib.Path(teacher) / "checkpoints" / "ckpt-10.index").touch()
        student = distillation.student_config(teacher, direction="b2a", lambda_feature=10.0)
    # Recorded as an absolute path: the one of a run folder on the machine that trained it.
    configs["distill"] = student.replace(distill=student.distill.replace(teacher="/home/me/runs/horse2zebra"))
    for name, config in configs.items():
        config.save(out / f"{name}.json")
        print("wrote", out / f"{name}.json")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else pathlib.Path(__file__).parent)
