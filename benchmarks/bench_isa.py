"""Training step, generator forward and TFLite files on the native ISA and on AVX2, with the reference.

Issue #19's figures, from one run: every candidate in its own process
(common.Worker), all of one section timed interleaved (A B C ... A B C ...),
each ISA mode emulated by environment variables set before the worker's
libraries load (common.ISA_MODES: `avx2` = ONEDNN_MAX_CPU_ISA=AVX2 for
TensorFlow, ATEN_CPU_CAPABILITY=avx2 for PyTorch). Ratios are against the
PyTorch reference of the same ISA, measured in the same rounds.

Candidates:
  torch         benchmarks/torch_reference.py (the authors' networks / iteration), 2 threads
  keras         tfcyclegan as shipped: `import tfcyclegan` first, so its start-up choice
                of TensorFlow path applies (tfcyclegan/kernels/cpu.py); the path is printed
  keras_eigen   TF_ENABLE_ONEDNN_OPTS=0
  keras_onednn  TF_ENABLE_ONEDNN_OPTS=1
  NAME@REV      any of these but torch, on git revision REV: a before/after figure
TFLite (LiteRT XNNPACK, 2 threads; XNNPACK has no ISA switch, so native only):
fp32 fixed-size and dynamic-size files, this code and `--baseline` (a git
revision, default main) side by side.

    python benchmarks/bench_isa.py [--rounds 2] [--sections forward,deploy,train] [--readme]

`--readme` writes the tables into benchmarks/README.md between the
"isa:begin" / "isa:end" markers (run_all.py keeps that block) and the figures
into benchmarks/isa_results.json.
"""

import argparse
import contextlib
import os
import re
import sys

if not __package__:  # run as a script
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from benchmarks import bench_generator, bench_train, common  # noqa: E402

TF_PATHS = {"keras": {}, "keras_eigen": {"TF_ENABLE_ONEDNN_OPTS": "0"},
            "keras_onednn": {"TF_ENABLE_ONEDNN_OPTS": "1"}}
SECTIONS = ("forward", "deploy", "train")
README = os.path.join(os.path.dirname(os.path.abspath(__file__)), "README.md")
RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "isa_results.json")
BEGIN, END = "<!-- isa:begin -->", "<!-- isa:end -->"


class KerasForward(bench_generator.KerasGeneratorForward):
    def path(self):
        return common.tensorflow_path()


class SavedModelForward:
    """The generator of `KerasForward` exported as a SavedModel (what TF Serving
    loads), run through its `translate` signature (dynamic size, float32)."""

    def __init__(self, size=256, threads=2, seed=0):
        import tempfile

        import tfcyclegan  # noqa: F401  # first, as a user's program: it picks the TF path
        import numpy as np
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        from tfcyclegan import export
        from tfcyclegan.networks import ResnetGenerator

        self._folder = tempfile.TemporaryDirectory()
        generator = ResnetGenerator(ngf=64, n_blocks=9, seed=seed, name="G")
        version = export.export_saved_model(generator, self._folder.name, "G")
        self.translate = export.load_translator(version)
        self.image = np.random.default_rng(seed).uniform(-1, 1, (1, size, size, 3)).astype(np.float32)

    def path(self):
        return common.tensorflow_path()

    def run(self):
        return self.translate(self.image)


class KerasTrain(bench_train.KerasTrainStep):
    def path(self):
        return common.tensorflow_path()


class TFLiteFiles:
    """fp32 .tflite files of a ResNet-9 ngf 64 (seed 0): fixed-size and dynamic-size."""

    def __init__(self, size=256, threads=2, seed=0):
        import numpy as np
        from ai_edge_litert.interpreter import Interpreter

        from tfcyclegan import export
        from tfcyclegan.networks import ResnetGenerator

        generator = ResnetGenerator(ngf=64, n_blocks=9, seed=seed, name="G")
        self.image = np.random.default_rng(seed).uniform(-1, 1, (1, size, size, 3)).astype(np.float32)
        expected = generator(self.image, training=False).numpy()
        self.runners, self.ops, self.max_abs = {}, {}, {}
        for name, input_size in (("fixed", (size, size)), ("dynamic", None)):
            flatbuffer = export.convert_tflite(generator, input_size=input_size,
                                               default_input_size=None if input_size else (size, size))
            self.ops[name] = export.tflite_ops(flatbuffer)
            runner = Interpreter(model_content=flatbuffer, num_threads=threads).get_signature_runner("translate")
            self.max_abs[name] = float(np.abs(runner(images=self.image)["output_images"] - expected).max())
            runner(images=self.image)  # XNNPACK packs weights on the first run
            self.runners[name] = runner

    def info(self):
        return {"ops": self.ops, "max_abs": self.max_abs}

    def time(self, name, calls=1):
        import time

        seconds = []
        for _ in range(calls):
            start = time.perf_counter()
            self.runners[name](images=self.image)
            seconds.append(time.perf_counter() - start)
        return seconds


# Candidate -> (module, factory) per section; the TF_PATHS names are tfcyclegan's Keras one.
FACTORIES = {
    "forward": {"torch": ("benchmarks.torch_reference", "TorchGeneratorForward"),
                "saved_model": ("benchmarks.bench_isa", "SavedModelForward"),
                None: ("benchmarks.bench_isa", "KerasForward")},
    "train": {"torch": ("benchmarks.torch_reference", "TorchTrainStep"),
              None: ("benchmarks.bench_isa", "KerasTrain")},
}


def check_candidates(section, candidates):
    """Raises ValueError for a name `section` does not know, or a revision on torch."""
    factories = FACTORIES[section]
    for candidate in candidates:
        name, _, revision = candidate.partition("@")
        if (name not in factories and name not in TF_PATHS) or (revision and name == "torch"):
            raise ValueError(
                f"unknown {section} candidate {candidate!r}; choose from "
                f"{sorted(set(factories) - {None} | set(TF_PATHS))}, optionally @REVISION (not torch)"
            )


def _workers(stack, section, isas, candidates, size, log):
    """One worker per candidate and ISA. A candidate `name@REV` is `name` run on git
    revision REV of the package (a temporary worktree): a before/after figure."""
    check_candidates(section, candidates)
    workers = {}
    factories = FACTORIES[section]
    checkouts = {}
    for candidate in candidates:
        revision = candidate.partition("@")[2]
        if revision and revision not in checkouts:
            checkouts[revision] = stack.enter_context(common.git_worktree(revision))
    for isa in isas:
        for candidate in candidates:
            name, _, revision = candidate.partition("@")
            module, factory = factories.get(name, factories[None])
            env = {**common.isa_env(isa), **TF_PATHS.get(name, {})}
            label = f"{candidate} [{isa}]"
            log(f"{section}: starting {label}")
            workers[label] = stack.enter_context(common.Worker(
                module, factory, env=env, label=label, code=checkouts.get(revision), size=size, threads=2
            ))
    return workers


def run_timed(section, isas, candidates, size, rounds, warmup, log=common.log):
    """{label: {min, median, ..., isa, candidate, path}} of a forward or train section."""
    with contextlib.ExitStack() as stack:
        workers = _workers(stack, section, isas, candidates, size, log)
        measured = common.measure(workers, warmup, rounds, 1, log)
        for label, worker in workers.items():
            name, isa = label[:-1].split(" [")
            measured[label].update(candidate=name, isa=isa,
                                   path="-" if name == "torch" else worker.call("path"))
    return measured


def run_deploy(size, rounds, iters, baseline, log=common.log):
    """fp32 fixed/dynamic TFLite latency of this code and `baseline`, with the torch forward."""
    result = {"baseline": baseline, "latency": {}, "info": {}}
    with contextlib.ExitStack() as stack:
        runners = {"this": stack.enter_context(common.Worker(
            "benchmarks.bench_isa", "TFLiteFiles", label="tflite", size=size, threads=2))}
        if baseline:
            checkout = stack.enter_context(common.git_worktree(baseline))
            runners[baseline] = stack.enter_context(common.Worker(
                "benchmarks.bench_isa", "TFLiteFiles", label=f"tflite@{baseline}", code=checkout,
                size=size, threads=2))
        torch = stack.enter_context(common.Worker(
            "benchmarks.torch_reference", "TorchGeneratorForward", label="torch", size=size, threads=2))
        torch.time(1)
        names = [(code, kind) for code in runners for kind in ("fixed", "dynamic")]
        times = {f"{kind} ({code})": [] for code, kind in names}
        times["torch [native]"] = []
        for r in range(rounds):
            for code, kind in names:
                times[f"{kind} ({code})"] += runners[code].call("time", kind, iters)
            times["torch [native]"] += torch.time(iters)
            log(f"  deploy round {r + 1}/{rounds}: " + ", ".join(
                f"{k} {min(v[-iters:]):.3f}s" for k, v in times.items()))
        result["latency"] = {k: common.summarize(v) for k, v in times.items()}
        result["info"] = {code: runner.call("info") for code, runner in runners.items()}
    return result


def _ratio(a, b):
    return f"{a / b:.2f}" if a and b else "–"


def render(result):
    """Markdown for README.md (between the isa markers)."""
    machine = result["machine"]
    lines = [BEGIN, "", "## Native ISA and AVX2 (issue #19)", "",
             f"Generated by `{result['command']}` on {machine['date']}, in {result['minutes']:.0f} minutes; "
             f"code {result['code']}.", "",
             f"- machine: {machine['cpu']}, {machine['cpus']} CPUs, ISA {', '.join(machine['isa'])}; "
             f"load average at start {machine['load_average']} (shared: treat differences under ~10% as noise)",
             f"- calibration (2048² float32 matmul, TensorFlow, native): before {result['calibration_before']['best']:.0f} "
             f"GFLOP/s best, after {result['calibration_after']['best']:.0f}",
             "- `[avx2]`: AVX2 emulated on this CPU (`ONEDNN_MAX_CPU_ISA=AVX2`, which also caps the GEMM kernels of "
             "TensorFlow's Eigen path, and `ATEN_CPU_CAPABILITY=avx2` for PyTorch); `[native]`: the CPU as it is. "
             "`keras` is tfcyclegan as shipped (its start-up choice of TensorFlow path, `tfcyclegan/kernels/cpu.py`); "
             "`path` is the one its TensorFlow ran.",
             "- 2 threads everywhere; min / median of interleaved rounds; ratios against the PyTorch reference "
             "of the same ISA in the same rounds."]
    if machine["load_average"][0] > machine["cpus"]:
        end = result.get("load_average_end")
        lines.append(
            f"- **oversubscribed**: load average {machine['load_average'][0]} at start"
            + (f", {end[0]} at end" if end else "")
            + f" on {machine['cpus']} CPUs (other jobs ran throughout). Candidates slow down unequally "
            "on an oversubscribed machine (OpenMP's waiting barriers, which PyTorch uses, suffer most): "
            "read the ratios as indicative only and rerun on a quiet machine.")
    lines.append("")
    for section, title, how in (
        ("train", "Training step, 256 px, paper config (fp32)", "speed × torch = torch time / ours (≥ 1 is faster)"),
        ("forward", "ResNet-9 forward, 256 px, batch 1", "time ÷ torch = ours / torch time (≤ 1 is faster); "
         "`keras*`: the Keras generator in a tf.function; `saved_model`: the exported SavedModel's `translate` "
         "signature (dynamic size, as TF Serving runs it)"),
    ):
        measured = result.get(section)
        if not measured:
            continue
        lines += [f"### {title}", "", f"{how}.", "",
                  "| ISA | candidate | path | min s | median s | ratio (min) | ratio (median) |",
                  "|---|---|---|---|---|---|---|"]
        for label, m in measured.items():
            ref = measured.get(f"torch [{m['isa']}]")
            if section == "train":
                ratio = (_ratio(ref["min"], m["min"]), _ratio(ref["median"], m["median"])) if ref else ("–", "–")
            else:
                ratio = (_ratio(m["min"], ref["min"]), _ratio(m["median"], ref["median"])) if ref else ("–", "–")
            lines.append(f"| {m['isa']} | {m['candidate']} | {m['path']} | {m['min']:.3f} | {m['median']:.3f} "
                         f"| {ratio[0]} | {ratio[1]} |")
        lines.append("")
    deploy = result.get("deploy")
    if deploy:
        torch = deploy["latency"]["torch [native]"]
        baseline = f", `{deploy['baseline']}` the baseline" if deploy["baseline"] else " (no baseline)"
        lines += ["### TFLite fp32, fixed vs dynamic size (LiteRT XNNPACK, native)", "",
                  f"`this` is this code{baseline}; time ÷ torch against the PyTorch "
                  "forward (native) of the same rounds; dynamic ÷ fixed of the same code.", "",
                  "| file | min s | median s | ÷ torch (min) | dynamic ÷ fixed (min) | (median) | TRANSPOSE_CONV | max abs vs Keras |",
                  "|---|---|---|---|---|---|---|---|"]
        for label, t in deploy["latency"].items():
            match = re.match(r"(\w+) \((.+)\)", label)
            if not match:
                lines.append(f"| {label} | {t['min']:.3f} | {t['median']:.3f} | 1.00 | | | | |")
                continue
            kind, code = match.groups()
            fixed = deploy["latency"][f"fixed ({code})"]
            info = deploy["info"][code]
            dyn = (_ratio(t["min"], fixed["min"]), _ratio(t["median"], fixed["median"])) if kind == "dynamic" else ("", "")
            lines.append(f"| {kind} ({code}) | {t['min']:.3f} | {t['median']:.3f} | {_ratio(t['min'], torch['min'])} "
                         f"| {dyn[0]} | {dyn[1]} | {'yes' if 'TRANSPOSE_CONV' in info['ops'][kind] else 'no'} "
                         f"| {info['max_abs'][kind]:.1e} |")
        lines.append("")
    lines.append(END)
    return "\n".join(lines)


def write_readme(block, path=README):
    """Replaces (or appends) the isa block of README.md."""
    with open(path) as f:
        text = f.read()
    pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip("\n") + "\n\n" + block + "\n"
    with open(path, "w") as f:
        f.write(text)


def main(argv=None):
    import time

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--isa", default="native,avx2", help=f"from {sorted(common.ISA_MODES)}")
    parser.add_argument("--sections", default=",".join(SECTIONS))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--train-rounds", type=int, default=2)
    parser.add_argument("--forward-candidates", default="torch,keras,saved_model,keras_eigen,keras_onednn")
    parser.add_argument("--train-candidates", default="torch,keras,keras_onednn")
    parser.add_argument("--baseline", default="main", help="git revision for the TFLite before/after ('' for none)")
    parser.add_argument("--readme", action="store_true", help="write the tables into benchmarks/README.md")
    parser.add_argument("--json", default=None)
    parser.add_argument("--from-json", default=None, help="render saved figures only (with --readme: write them)")
    args = parser.parse_args(argv)
    if args.from_json:
        import json

        with open(args.from_json) as f:
            result = json.load(f)
        block = render(result)
        print(block)
        if args.readme:
            write_readme(block)
            common.save_json(result, RESULTS)
        return 0
    isas = args.isa.split(",")
    for isa in isas:
        common.isa_env(isa)
    sections = args.sections.split(",")
    # Before any section runs: a misspelt train candidate would surface after the others.
    check_candidates("forward", args.forward_candidates.split(","))
    check_candidates("train", args.train_candidates.split(","))
    start = time.perf_counter()
    command = "python benchmarks/bench_isa.py " + " ".join(argv if argv is not None else sys.argv[1:])
    result = {"machine": common.machine_info(), "code": common.code_version(), "command": command.strip()}
    result["calibration_before"] = common.matmul_gflops()
    if "forward" in sections:
        result["forward"] = run_timed("forward", isas, args.forward_candidates.split(","), 256, args.rounds, 1)
    if "deploy" in sections:
        result["deploy"] = run_deploy(256, args.rounds, 2, args.baseline or None)
    if "train" in sections:
        result["train"] = run_timed("train", isas, args.train_candidates.split(","), 256, args.train_rounds, 1)
    result["calibration_after"] = common.matmul_gflops()
    result["load_average_end"] = [round(v, 2) for v in os.getloadavg()]
    result["minutes"] = (time.perf_counter() - start) / 60
    block = render(result)
    print(block)
    if args.readme:
        write_readme(block)
        common.save_json(result, RESULTS)
    if args.json:
        common.save_json(result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
