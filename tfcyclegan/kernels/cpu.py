"""Which of TensorFlow's CPU paths tfcyclegan runs on, chosen before TensorFlow is imported.

TensorFlow's x86 wheels have two paths for convolutions: Eigen's, and oneDNN's
(`TF_ENABLE_ONEDNN_OPTS=1`). TensorFlow turns oneDNN on by default on Linux
CPUs with AVX512_VNNI, AVX512_BF16, AVX_VNNI or AMX. On CPUs without AVX-512
that means AVX_VNNI machines (Intel Core 12th generation and later): there
oneDNN runs at AVX2, where the NHWC float32 convolutions TensorFlow gives it
fall back to its im2col + GEMM implementation (`gemm:jit` in `ONEDNN_VERBOSE`
output; with AVX-512 they run as `brg_conv_fwd`). Measured on a Xeon (family 6
model 207) with oneDNN limited to AVX2 (`ONEDNN_MAX_CPU_ISA=AVX2`), 1 thread:
a ResNet-9 forward at 256 px took 2.5-3.0 s on oneDNN and 1.6 s on Eigen, a
256 x 256-channel 3x3 convolution at 64 x 64 115 ms against 62-78 ms
(benchmarks/README.md). So when oneDNN would run below AVX-512, tfcyclegan asks
for Eigen; elsewhere it keeps TensorFlow's default (oneDNN where it is on:
with AVX-512 the two paths are within noise of each other in float32, and
mixed_bfloat16 needs oneDNN).

The user's own `TF_ENABLE_ONEDNN_OPTS`, whatever its value, always wins, and
nothing changes once TensorFlow is imported.
"""

import functools
import os
import platform
import sys

ONEDNN_OPTS = "TF_ENABLE_ONEDNN_OPTS"

# `ONEDNN_MAX_CPU_ISA` values that stop oneDNN below AVX-512 (its dispatcher
# control; DNNL_MAX_CPU_ISA is the older name).
_BELOW_AVX512 = {"SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2"}


def cpu_flags(path="/proc/cpuinfo"):
    """The first CPU's feature flags (Linux), or None where they cannot be read."""
    try:
        with open(path) as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        return None
    return None


@functools.lru_cache(maxsize=None)
def amx():
    """Whether the CPU has AMX's bfloat16 tiles (`amx_bf16`), where oneDNN's bfloat16
    convolutions are expected to run far faster than on AVX512_BF16 (not measured here)."""
    return "amx_bf16" in (cpu_flags() or ())


def _x86():
    return platform.machine().lower() in ("x86_64", "amd64", "i386", "i686")


def onednn_below_avx512(flags, environ):
    """Whether oneDNN would run at AVX2 or below: no AVX-512 on the CPU, or capped by
    `ONEDNN_MAX_CPU_ISA`."""
    if "avx512f" not in flags:
        return True
    cap = environ.get("ONEDNN_MAX_CPU_ISA") or environ.get("DNNL_MAX_CPU_ISA") or ""
    return cap.strip().upper() in _BELOW_AVX512


def choose_tensorflow_path(environ=None, flags=None, machine_is_x86=None):
    """The `TF_ENABLE_ONEDNN_OPTS` value to set before TensorFlow starts, and why.

    Args:
        environ: the environment (default `os.environ`).
        flags: the CPU's feature flags (default: read from /proc/cpuinfo).
        machine_is_x86: whether this is an x86 machine (default: asked of `platform`).

    Returns:
        (value, reason): value "0" (Eigen) or None (leave TensorFlow's default).
    """
    environ = os.environ if environ is None else environ
    if ONEDNN_OPTS in environ:
        return None, f"{ONEDNN_OPTS} set by the user"
    if "tensorflow" in sys.modules:
        return None, "TensorFlow was imported first"
    if not (_x86() if machine_is_x86 is None else machine_is_x86):
        return None, "not an x86 CPU"
    flags = cpu_flags() if flags is None else set(flags)
    if not flags:
        return None, "CPU features unknown"
    if onednn_below_avx512(flags, environ):
        return "0", "oneDNN would run below AVX-512, where Eigen's convolutions are faster"
    return None, "AVX-512: TensorFlow's default"


def eigen_convolutions():
    """Whether this process's TensorFlow runs convolutions in Eigen rather than oneDNN
    (imports TensorFlow; the layers' fast forms depend on it)."""
    try:
        from tensorflow.python.util import _pywrap_util_port

        return not _pywrap_util_port.IsMklEnabled()
    except (ImportError, AttributeError):  # private API: assume the default wheel's Eigen
        return True


def cpus_only():
    """Whether TensorFlow sees CPUs only (no GPU or TPU): the layers' CPU forms
    (`eigen_conv`, `winograd`) are for CPUs; accelerators have their own kernels."""
    import tensorflow as tf

    return all(device.device_type == "CPU" for device in tf.config.list_logical_devices())


def choose_tensorflow_path_at_startup():
    """Sets `TF_ENABLE_ONEDNN_OPTS` as `choose_tensorflow_path` says (once, at import)."""
    value, _ = choose_tensorflow_path()
    if value is not None:
        os.environ[ONEDNN_OPTS] = value
    return value


# --- What mixed_bfloat16 training gains on this CPU -----------------------------

# A mixed_bfloat16 training step's speed × float32's (as shipped: float32 has the
# Winograd tiles), paper config at 256 px, 2 threads, on an AMD EPYC (Zen 4:
# AVX512_BF16, no AMX): docs/cpu_paths.md, section "bfloat16", has the figures,
# the command, and why it is not ~2x (the direct convolutions' gain).
MIXED_BFLOAT16_SPEED_AVX512_BF16 = 1.2


def mixed_bfloat16_note(flags=None):
    """One line for a user who chose `mixed_bfloat16` training on this CPU, or None.

    With AVX512_BF16 and no AMX: the speed bfloat16 was measured to gain there.
    With AMX: that it was not measured. Without either: that bfloat16 is
    emulated. None off x86, where TensorFlow sees an accelerator, or where the
    CPU's features are unknown.

    Args:
        flags: the CPU's feature flags (default: read from /proc/cpuinfo).
    """
    flags = cpu_flags() if flags is None else set(flags)
    if not flags or not _x86() or not cpus_only():
        return None
    speed = f"{MIXED_BFLOAT16_SPEED_AVX512_BF16:.1f}x float32's speed"
    if "amx_bf16" in flags:
        return (
            "Note: AMX found: mixed_bfloat16 training was not measured with AMX (on AVX512_BF16 "
            f"without AMX it ran at {speed}; docs/cpu_paths.md, \"bfloat16\")."
        )
    if "avx512_bf16" in flags:
        return (
            f"Note: AVX512_BF16 without AMX: mixed_bfloat16 training measured {speed} on such "
            "a CPU; float32 keeps full precision (docs/cpu_paths.md, \"bfloat16\")."
        )
    return (
        "Note: no AVX512_BF16 or AMX on this CPU: its bfloat16 arithmetic is emulated "
        "(mixed_bfloat16 not measured here); float32 keeps full precision."
    )
