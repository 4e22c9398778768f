"""benchmarks/README.md is generated from benchmarks/results.json, never typed."""

import contextlib
import json
import pathlib

import pytest

from benchmarks import bench_isa, run_all

BENCHMARKS = pathlib.Path(__file__).resolve().parents[1] / "benchmarks"


def test_readme_is_the_rendering_of_the_saved_results():
    result = json.loads((BENCHMARKS / "results.json").read_text())
    expected = run_all.render(result)
    block = run_all._isa_block(BENCHMARKS / "README.md")
    if block is not None:  # bench_isa.py's native-vs-AVX2 tables, from their own results
        isa = json.loads((BENCHMARKS / "isa_results.json").read_text())
        assert block == bench_isa.render(isa)
        expected = expected.rstrip("\n") + "\n\n" + block + "\n"
    assert expected == (BENCHMARKS / "README.md").read_text()


def test_results_cover_every_target_of_the_issue():
    result = json.loads((BENCHMARKS / "results.json").read_text())
    assert not result["quick"], "the committed figures must come from a full run"
    assert "256" in result["train"], "training at 256 px (the paper's size) is measured"
    targets = [row[0] for row in run_all.summary(result)]
    for phrase in ("≥ 1.25× the reference's throughput", "GFLOP/s", "fastest deployable path",
                   "TFLite fp16 file", "TFLite int8 file", "input pipeline", "peak resident memory"):
        assert any(phrase in target for target in targets), phrase
    for calibration in ("calibration_before", "calibration_after"):
        assert result[calibration]["best"] > 0


def test_isa_candidates_are_checked_before_any_worker_starts():
    # A misspelt name (or one with a revision) used to run the current code under its label.
    with contextlib.ExitStack() as stack, pytest.raises(ValueError, match="'kears@HEAD'"):
        bench_isa._workers(stack, "train", ["native"], ["torch", "kears@HEAD"], 64, print)
    with pytest.raises(ValueError, match="'saved_model'"):
        bench_isa.check_candidates("train", ["saved_model"])  # a forward candidate
    with pytest.raises(ValueError, match="'torch@HEAD'"):
        bench_isa.check_candidates("forward", ["torch@HEAD"])  # the reference has no revisions
    with pytest.raises(ValueError, match="'kears'"):  # from the command line, before any section
        bench_isa.main(["--sections", "forward", "--train-candidates", "kears"])
