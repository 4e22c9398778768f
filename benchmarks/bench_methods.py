"""Seconds per training step and memory of each method: CycleGAN, CUT, FastCUT, pix2pix.

Each method in its published configuration (`Config.for_method`: ResNet-9 ngf 64 and
the 70x70 PatchGAN for CycleGAN/CUT/FastCUT, CUT's blur-pool generator, pix2pix's
U-Net 256), batch 1, built as `tfcyclegan train` builds it (`runs.build_model`) and
stepped with `train_on_batch` on fixed random images. Every method runs in its own
process (`common.Worker`), is warmed up, then all are timed interleaved, A B C A B C ...

Memory: the process's peak RSS, and that peak minus the RSS measured right after
TensorFlow was imported (what the model, its optimizer state and the step's
activations add: TensorFlow's own ~1 GiB cancels out of the comparison).

    python benchmarks/bench_methods.py [--sizes 256] [--rounds 3] [--methods cyclegan,cut,fastcut]

`run(...)` returns everything printed as a dict.
"""

import argparse
import os
import sys

if not __package__:  # run as a script; as benchmarks.bench_methods a worker sets the path
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from benchmarks import common  # noqa: E402

METHODS = ("cyclegan", "cut", "fastcut", "pix2pix")
DEFAULT_METHODS = ("cyclegan", "cut", "fastcut")
BASELINE = "cyclegan"


class MethodTrainStep:
    """One training step of `method` (its published config, batch 1) per `run()` call.

    Args:
        method: one of `METHODS`.
        size: image height and width.
        threads: intra-op threads (2: the machine's cores).
        seed: weights and images.
    """

    def __init__(self, method="cyclegan", size=256, threads=2, seed=0):
        import numpy as np
        import tensorflow as tf

        self.rss_after_import = common.current_rss_bytes()
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        from tfcyclegan.config import Config, DataConfig
        from tfcyclegan.runs import build_model

        config = Config.for_method(method)
        config = config.replace(data=DataConfig(load_size=size, crop_size=size, batch_size=1))
        self.model = build_model(config)
        rng = np.random.default_rng(seed)
        self.batches = [
            tuple(tf.constant(rng.uniform(-1, 1, (1, size, size, 3)).astype(np.float32)) for _ in range(2))
            for _ in range(4)
        ]
        self.count = 0

    def baseline(self):
        return self.rss_after_import

    def parameters(self):
        """Trainable parameters of every network (G, F, D_X, D_Y / G, H, D / G, D)."""
        return int(sum(v.numpy().size for v in self.model.trainable_variables))

    def run(self):
        x, y = self.batches[self.count % len(self.batches)]
        self.count += 1
        return self.model.train_on_batch(x, y, return_dict=True)["total"]


def run(sizes=(256,), methods=DEFAULT_METHODS, rounds=3, warmup=2, log=common.log):
    for method in methods:
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r}; choose from {list(METHODS)}")
    result = {"machine": common.machine_info(), "code": common.code_version(), "sizes": {},
              "rounds": rounds, "warmup": warmup, "methods": list(methods)}
    for size in sizes:
        workers = {}
        try:
            for method in methods:
                workers[method] = common.Worker("benchmarks.bench_methods", "MethodTrainStep",
                                                label=method, method=method, size=size)
                log(f"{size} px: started {method}")
            measured = common.measure(workers, warmup, rounds, 1, log)
            for method, worker in workers.items():
                measured[method]["rss_after_import"] = worker.call("baseline")
                measured[method]["parameters"] = worker.call("parameters")
            result["sizes"][size] = measured
        finally:
            for worker in workers.values():
                worker.close()
    return result


def print_result(result, out=print):
    out(common.describe_machine(result["machine"]) + f"; code {result['code']}")
    out(f"training step per method, published configs, batch 1; {result['rounds']} interleaved rounds "
        f"after {result['warmup']} warm-up steps; x {BASELINE}: ratio to {BASELINE}'s figure in the same run")
    out(f"{'px':>4} {'method':<9}{'params M':>9}{'min s':>8}{'median s':>9}{'speed x':>8}"
        f"{'peak RSS':>10}{'added':>9}{'added x':>8}")
    for size, measured in result["sizes"].items():
        base = measured.get(BASELINE)
        for method, m in measured.items():
            added = m["peak_rss"] - m["rss_after_import"]
            speed = base["median"] / m["median"] if base else float("nan")
            added_ratio = added / (base["peak_rss"] - base["rss_after_import"]) if base else float("nan")
            out(f"{int(size):>4} {method:<9}{m['parameters'] / 1e6:>9.2f}{m['min']:>8.2f}{m['median']:>9.2f}"
                f"{speed:>8.2f}{m['peak_rss'] / 2**30:>9.2f}G{added / 2**30:>8.2f}G{added_ratio:>8.2f}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="256", help="comma-separated image sizes (256)")
    parser.add_argument("--methods", default=",".join(DEFAULT_METHODS),
                        help=f"comma-separated, of {','.join(METHODS)} ({','.join(DEFAULT_METHODS)})")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--json", help="also write the result here")
    args = parser.parse_args(argv)
    result = run(tuple(int(s) for s in args.sizes.split(",")), tuple(args.methods.split(",")),
                 args.rounds, args.warmup)
    print_result(result)
    if args.json:
        common.save_json(result, args.json)
    return result


if __name__ == "__main__":
    main()
