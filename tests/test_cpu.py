"""tfcyclegan.kernels.cpu: the TensorFlow CPU path chosen before TensorFlow starts."""

import os
import pathlib
import subprocess
import sys

import pytest

from tfcyclegan.kernels import cpu

AVX2 = {"sse4_1", "avx", "avx2", "fma"}
AVX2_VNNI = AVX2 | {"avx_vnni"}  # Intel Core 12th gen+: TensorFlow turns oneDNN on
AVX512 = AVX2 | {"avx512f", "avx512_vnni"}


@pytest.mark.parametrize(
    "flags,environ,expected",
    [
        (AVX2, {}, "0"),
        (AVX2_VNNI, {}, "0"),
        (AVX512, {}, None),
        (AVX512, {"ONEDNN_MAX_CPU_ISA": "AVX2"}, "0"),
        (AVX512, {"ONEDNN_MAX_CPU_ISA": "avx512_core"}, None),
        # The user's choice, either way, wins.
        (AVX2, {"TF_ENABLE_ONEDNN_OPTS": "1"}, None),
        (AVX512, {"TF_ENABLE_ONEDNN_OPTS": "0"}, None),
    ],
)
def test_choice(flags, environ, expected, monkeypatch):
    monkeypatch.delitem(sys.modules, "tensorflow", raising=False)
    value, reason = cpu.choose_tensorflow_path(environ, flags, machine_is_x86=True)
    assert value == expected, reason


def test_no_choice_off_x86_or_without_cpu_flags(monkeypatch):
    monkeypatch.delitem(sys.modules, "tensorflow", raising=False)
    assert cpu.choose_tensorflow_path({}, AVX2, machine_is_x86=False)[0] is None
    assert cpu.choose_tensorflow_path({}, set(), machine_is_x86=True)[0] is None


def test_no_choice_once_tensorflow_is_imported():
    import tensorflow  # noqa: F401

    assert cpu.choose_tensorflow_path({}, AVX2, machine_is_x86=True) == (
        None, "TensorFlow was imported first"
    )


def _startup_value(**env):
    """TF_ENABLE_ONEDNN_OPTS as a fresh `import tfcyclegan` leaves it."""
    environ = {k: v for k, v in os.environ.items() if k not in ("TF_ENABLE_ONEDNN_OPTS", "ONEDNN_MAX_CPU_ISA")}
    environ.update(env)
    code = "import os, tfcyclegan; print(os.environ.get('TF_ENABLE_ONEDNN_OPTS'))"
    return subprocess.run(
        [sys.executable, "-c", code], env=environ, capture_output=True, text=True, check=True,
        cwd=pathlib.Path(__file__).resolve().parents[1],
    ).stdout.strip()


def test_import_sets_eigen_when_onednn_is_capped_to_avx2():
    # Emulating an AVX2 CPU on any x86 machine: oneDNN limited to AVX2.
    if not cpu._x86() or not cpu.cpu_flags():
        pytest.skip("needs an x86 Linux machine")
    assert _startup_value(ONEDNN_MAX_CPU_ISA="AVX2") == "0"


def test_import_keeps_the_users_setting():
    assert _startup_value(ONEDNN_MAX_CPU_ISA="AVX2", TF_ENABLE_ONEDNN_OPTS="1") == "1"


BF16 = AVX512 | {"avx512_bf16"}
AMX = BF16 | {"amx_tile", "amx_bf16"}


@pytest.mark.parametrize(
    "flags,says",
    [
        (BF16, f"AVX512_BF16 without AMX: mixed_bfloat16 training measured "
               f"{cpu.MIXED_BFLOAT16_SPEED_AVX512_BF16:.1f}x float32's speed"),
        (AMX, "not measured with AMX"),
        (AVX512, "no AVX512_BF16 or AMX"),
        (AVX2, "no AVX512_BF16 or AMX"),
    ],
)
def test_mixed_bfloat16_note_names_the_cpu_feature_found(flags, says, monkeypatch):
    monkeypatch.setattr(cpu, "_x86", lambda: True)
    note = cpu.mixed_bfloat16_note(flags)
    assert note.startswith("Note: ") and says in note and "\n" not in note


def test_no_mixed_bfloat16_note_off_x86_or_with_an_accelerator(monkeypatch):
    monkeypatch.setattr(cpu, "_x86", lambda: False)
    assert cpu.mixed_bfloat16_note(BF16) is None
    monkeypatch.setattr(cpu, "_x86", lambda: True)
    monkeypatch.setattr(cpu, "cpus_only", lambda: False)
    assert cpu.mixed_bfloat16_note(BF16) is None
    assert cpu.mixed_bfloat16_note(set()) is None
