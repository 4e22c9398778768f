"""What every benchmark shares: machine facts, calibration, interleaved timing.

The machine these run on is shared and noisy (a 2048^2 matmul has measured
anywhere from 95 to 208 GFLOP/s within minutes), so every figure is:

- measured between two calibration lines (GFLOP/s of a 2048^2 float32
  matmul), so runs on different days or machines can be compared;
- interleaved with what it is compared against (A B A B ...), so a neighbour
  that starts or stops mid-run slows both alike;
- repeated, reported as min (the least-disturbed run: the best estimate of
  what the code costs) and median (what a user sees on a busy machine).

Each candidate runs in its own worker process (`Worker`), for three reasons:
settings such as `TF_ENABLE_ONEDNN_OPTS` or thread pools only take effect
before TensorFlow starts; TensorFlow and PyTorch each keep thread pools that
would spin against each other in one process; and peak resident memory is
then that candidate's alone. A waiting worker blocks on its pipe and uses no CPU.

    from benchmarks.common import Worker, interleave, matmul_gflops
    with Worker("benchmarks.torch_reference", "TorchTrainStep", size=128) as torch_step:
        ...
"""

import contextlib
import datetime
import importlib
import json
import os
import platform
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from importlib import metadata
from multiprocessing.connection import Connection

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Compute per operation, from /work/shared/reference/README.md (counted for
# the reference networks; both implementations do the same arithmetic).
RESNET9_GFLOP_256 = 99.1  # one ResNet-9 ngf 64 forward: 49.55 GMAC
TRAIN_STEP_TFLOP_256 = 1.9  # one CycleGAN iteration, batch 1, paper config


def generator_gflop(size):
    """FLOP (in G) of one ResNet-9 ngf 64 forward at size x size."""
    return RESNET9_GFLOP_256 * (size / 256) ** 2


def train_step_gflop(size):
    """FLOP (in G) of one paper-config training iteration at size x size, batch 1."""
    return 1000 * TRAIN_STEP_TFLOP_256 * (size / 256) ** 2


# === Machine ===


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            info = f.read()
    except OSError:
        return platform.processor() or "unknown", []
    model = next(
        (line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")),
        "unknown",
    )
    flags = next(
        (line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags")),
        [],
    )
    family = next(
        (line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("cpu family")),
        "?",
    )
    number = next(
        (line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model\t")),
        "?",
    )
    return f"{model} (family {family} model {number})", flags


def _version(package):
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def machine_info():
    """What the figures were measured on (no heavy imports)."""
    model, flags = _cpu_model()
    interesting = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_tile")
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:
        cpus = os.cpu_count()
    try:
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        pages = 0
    return {
        "cpu": model,
        "isa": [flag for flag in interesting if flag in flags],
        "cpus": cpus,
        "memory_gib": round(pages / 2**30, 1),
        "python": platform.python_version(),
        "tensorflow": _version("tensorflow"),
        "keras": _version("keras"),
        "torch": _version("torch"),
        "ai_edge_litert": _version("ai-edge-litert"),
        "onednn_opts": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default (on)"),
        "date": datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "load_average": [round(v, 2) for v in os.getloadavg()],
    }


def describe_machine(info):
    return (
        f"{info['cpu']}, {info['cpus']} CPUs, ISA {'/'.join(info['isa']) or '-'}, "
        f"{info['memory_gib']} GiB; python {info['python']}, tensorflow {info['tensorflow']}, "
        f"keras {info['keras']}, torch {info['torch']}; oneDNN opts {info['onednn_opts']}; "
        f"{info['date']}, load average {info['load_average']}"
    )


# === ISA modes ===

ISA_MODES = {
    "native": {},
    # An AVX2 machine on a newer one. oneDNN stops at AVX2, and so do the JIT
    # GEMM kernels TensorFlow's Eigen convolutions and matmuls call (oneDNN's
    # sgemm: measured 147 -> 80 GFLOP/s on one core of an AVX-512 Xeon, so
    # the Eigen path is not ISA-independent). PyTorch's ATen kernels stop at
    # AVX2 too. XNNPACK (LiteRT) has no such switch: TFLite figures are native.
    "avx2": {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"},
}


def isa_env(mode):
    """Environment variables that emulate ISA mode `mode` (see ISA_MODES)."""
    if mode not in ISA_MODES:
        raise ValueError(f"unknown ISA mode {mode!r}; choose from {sorted(ISA_MODES)}")
    return dict(ISA_MODES[mode])


def tensorflow_path():
    """"onednn" or "eigen": the path this process's TensorFlow runs (import it first)."""
    try:
        from tensorflow.python.util import _pywrap_util_port

        return "onednn" if _pywrap_util_port.IsMklEnabled() else "eigen"
    except (ImportError, AttributeError):
        return "unknown"


# === Per-convolution benchmarks (bench_bf16_convs.py, bench_conv_gradients.py) ===


def add_conv_shape_arguments(parser):
    """`--rounds` and `--only` (comma-separated parts of the shape names)."""
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--only", default="", help="comma-separated parts of the shape names")


def conv_shape_setup(parser, args):
    """Checks `--rounds`, imports the package first (as a user's program: it picks the
    TF path), runs TensorFlow on one thread; returns a filter of shape names."""
    if args.rounds < 1:
        parser.error(f"--rounds must be >= 1; got {args.rounds}")
    import tfcyclegan  # noqa: F401
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    only = [part for part in args.only.split(",") if part]
    return lambda name: not only or any(part in name for part in only)


# === Calibration ===

_MATMUL = {}


def matmul_gflops(n=2048, repeats=10):
    """GFLOP/s of an n x n float32 matmul in TensorFlow: {"best", "median"} over `repeats` calls.

    Every benchmark's calibration line. Timed per call so that both the
    machine's best and its typical speed show.
    """
    import tensorflow as tf

    if n not in _MATMUL:
        a = tf.random.normal((n, n), seed=0)
        b = tf.random.normal((n, n), seed=1)
        _MATMUL[n] = tf.function(lambda: tf.reduce_sum(tf.matmul(a, b)))
        _MATMUL[n]().numpy()  # trace and warm up
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        _MATMUL[n]().numpy()
        rates.append(2 * n**3 / (time.perf_counter() - start) / 1e9)
    return {"best": max(rates), "median": statistics.median(rates)}


def calibration_line(label, gflops):
    return (
        f"calibration {label}: {gflops['best']:.1f} GFLOP/s best, {gflops['median']:.1f} median "
        "(2048x2048 float32 matmul, TensorFlow)"
    )


# === Statistics ===


def summarize(seconds):
    """min / median / count of a list of durations (seconds)."""
    return {
        "min": min(seconds),
        "median": statistics.median(seconds),
        "n": len(seconds),
        "all": list(seconds),
    }


def peak_rss_bytes():
    """This process's peak resident set size (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def current_rss_bytes():
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return None


# === Workers ===


class WorkerError(RuntimeError):
    """A worker's candidate raised; the message holds its traceback."""


class Worker:
    """A candidate built in its own Python process, called over a pipe.

    `Worker(module, factory, env=..., **kwargs)` starts a process that
    imports `module`, calls `factory(**kwargs)` and then serves calls:
    `time(n)` runs the candidate's `run()` n times and returns each call's
    seconds; `memory()` its peak and current RSS; `call(name, ...)` any other
    method. `env` adds environment variables (set before TensorFlow loads);
    `code` is a checkout whose `tfcyclegan` the worker imports (a baseline).
    """

    def __init__(self, module, factory, env=None, label=None, code=None, **kwargs):
        self.label = label or f"{module}.{factory}"
        parent, child = socket.socketpair()
        environment = dict(os.environ, **(env or {}))
        environment.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        # `code`: another checkout whose `tfcyclegan` to import instead of this
        # one (see `git_worktree`). Only the package is put on the path, from a
        # folder holding a link to it: the checkout's own `benchmarks` would
        # otherwise join this one's (a namespace package) and be found first.
        # `python -P` keeps the working directory off sys.path, so this order holds.
        self.package_link = None
        if code:
            self.package_link = tempfile.mkdtemp(prefix="tfcyclegan-package-")
            os.symlink(os.path.join(os.path.abspath(code), "tfcyclegan"),
                       os.path.join(self.package_link, "tfcyclegan"))
        environment["PYTHONPATH"] = os.pathsep.join(
            ([self.package_link] if code else [])
            + [REPO]
            + [p for p in environment.get("PYTHONPATH", "").split(os.pathsep) if p]
        )
        self.process = subprocess.Popen(
            [sys.executable, "-P", "-c", "import sys; from benchmarks.common import serve; serve(int(sys.argv[1]))",
             str(child.fileno())],
            pass_fds=[child.fileno()],
            env=environment,
            cwd=REPO,
        )
        child.close()
        self.connection = Connection(parent.detach())
        self._request(("build", module, factory, kwargs))

    def _request(self, message):
        try:
            self.connection.send(message)
            status, value = self.connection.recv()
        except (EOFError, OSError) as error:
            code = self.process.poll()
            raise WorkerError(f"{self.label}: worker died (exit code {code}): {error!r}") from None
        if status == "error":
            raise WorkerError(f"{self.label}:\n{value}")
        return value

    def time(self, calls=1):
        """Seconds of each of `calls` consecutive `run()` calls."""
        return self._request(("time", calls))

    def memory(self):
        """{"peak_rss", "rss"} of the worker process, in bytes."""
        return self._request(("memory",))

    def call(self, method, *args, **kwargs):
        return self._request(("call", method, args, kwargs))

    def close(self):
        if self.process.poll() is None:
            try:
                self.connection.send(("stop",))
                self.connection.recv()
            except (EOFError, OSError):
                pass
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.connection.close()
        if self.package_link:
            shutil.rmtree(self.package_link, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def serve(fd):
    """The worker side of `Worker` (runs in the child process)."""
    connection = Connection(fd)
    # Anything the candidate prints goes to stderr; the pipe is the only channel.
    sys.stdout = sys.stderr
    candidate = None
    while True:
        try:
            message = connection.recv()
        except EOFError:
            return
        kind = message[0]
        try:
            if kind == "build":
                _, module, factory, kwargs = message
                candidate = getattr(importlib.import_module(module), factory)(**kwargs)
                value = None
            elif kind == "time":
                value = []
                for _ in range(message[1]):
                    start = time.perf_counter()
                    candidate.run()
                    value.append(time.perf_counter() - start)
            elif kind == "memory":
                value = {"peak_rss": peak_rss_bytes(), "rss": current_rss_bytes()}
            elif kind == "call":
                _, method, args, kwargs = message
                value = getattr(candidate, method)(*args, **kwargs)
            elif kind == "stop":
                connection.send(("ok", None))
                return
            else:
                raise ValueError(f"unknown request {kind!r}")
            connection.send(("ok", value))
        except Exception:  # reported to the parent, which raises WorkerError
            connection.send(("error", traceback.format_exc()))


@contextlib.contextmanager
def git_worktree(revision):
    """A temporary checkout of `revision` of this repository (for a baseline)."""
    folder = tempfile.mkdtemp(prefix="tfcyclegan-baseline-")
    subprocess.run(
        ["git", "worktree", "add", "--detach", folder, revision],
        cwd=REPO, check=True, capture_output=True,
    )
    try:
        yield folder
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", folder], cwd=REPO, capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


def code_version(revision="HEAD"):
    """`git describe`-style id of the code measured, with a "+dirty" mark if package files changed."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", revision], cwd=REPO, check=True, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "tfcyclegan"], cwd=REPO, capture_output=True, text=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("+dirty" if dirty and revision == "HEAD" else "")


def interleave(workers, rounds, calls=1, log=None):
    """Times every worker `calls` times per round, in turn, for `rounds` rounds.

    Args:
        workers: {name: Worker}, warmed up already.
        rounds: A B A B ... repetitions.
        calls: consecutive calls per worker per turn.
        log: optional callable(str) for progress lines.

    Returns:
        {name: [seconds, ...]} of every timed call.
    """
    times = {name: [] for name in workers}
    for r in range(rounds):
        for name, worker in workers.items():
            seconds = worker.time(calls)
            times[name].extend(seconds)
            if log:
                log(f"  round {r + 1}/{rounds} {name}: " + ", ".join(f"{s:.3f}s" for s in seconds))
    return times


def interleave_calls(runners, argument, rounds, calls, log=None):
    """Times in-process runners (e.g. LiteRT interpreters) interleaved: A B C A B C ...

    Each runner is first called once untimed (XNNPACK packs its weights on the
    first run); then, for `rounds` rounds, each in turn `calls` times.

    Args:
        runners: {key: callable(argument)}.
        argument: what every runner is called on (e.g. one image).
        rounds: A B C ... repetitions.
        calls: consecutive calls per runner per turn.
        log: optional callable(str) for a line per round.

    Returns:
        {key: `summarize`d seconds per call}.
    """
    for run in runners.values():
        run(argument)
    times = {key: [] for key in runners}
    for r in range(rounds):
        for key, run in runners.items():
            for _ in range(calls):
                start = time.perf_counter()
                run(argument)
                times[key].append(time.perf_counter() - start)
        if log:
            log(f"  round {r + 1}/{rounds}")
    return {key: summarize(t) for key, t in times.items()}


def warm_up(workers, calls=2, log=None):
    """Runs each worker `calls` times untimed (traces, compiles, fills caches); returns those times."""
    times = {}
    for name, worker in workers.items():
        times[name] = worker.time(calls)
        if log:
            log(f"  warm-up {name}: " + ", ".join(f"{s:.2f}s" for s in times[name]))
    return times


def measure(workers, warmup, rounds, calls=1, log=None):
    """Warms `workers` up, times them interleaved and reads their peak memory.

    Returns:
        {name: {min, median, ... (`summarize`), "warmup": [seconds], peak_rss, rss}}.
    """
    warm = warm_up(workers, warmup, log)
    times = interleave(workers, rounds, calls, log)
    memory = {name: worker.memory() for name, worker in workers.items()}
    return {
        name: {**summarize(times[name]), "warmup": warm[name], **memory[name]} for name in workers
    }


def log(line):
    print(line, file=sys.stderr, flush=True)


def save_json(result, path):
    with open(path, "w") as f:
        json.dump(result, f, indent=1, default=str)
