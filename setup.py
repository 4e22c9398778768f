"""Packaging for tfcyclegan. Tool settings (pytest) live in pyproject.toml."""

import pathlib
import re

from setuptools import find_packages, setup

HERE = pathlib.Path(__file__).parent
VERSION = re.search(
    r'^__version__ = "([^"]+)"', (HERE / "tfcyclegan" / "version.py").read_text(), re.M
).group(1)

ONNX = ["tf2onnx>=1.16.1", "onnx>=1.16", "onnxruntime>=1.17"]

setup(
    name="tfcyclegan",
    version=VERSION,
    description=(
        "CycleGAN (Zhu et al. 2017) for TensorFlow / Keras 3: unpaired image-to-image "
        "translation trained with model.fit, exported to TF Serving and TFLite."
    ),
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["tfcyclegan", "tfcyclegan.*"]),
    # The web page of `export --format web` and the LiteRT.js runtime it ships
    # (Apache-2.0, its licence text beside it: tfcyclegan/export/webapp/litert/).
    package_data={"tfcyclegan.export": ["webapp/*.html", "webapp/*.js", "webapp/litert/*"]},
    # `tensorflow` (not `tensorflow-cpu`) runs on CPU-only machines too; GPU users
    # install `tensorflow[and-cuda]` on Linux. tensorflow-addons is deliberately
    # absent: it does not import under Keras 3.
    install_requires=[
        "tensorflow>=2.21,<2.22",
        "keras>=3.10,<4",
        "numpy>=1.26",
        "pillow>=10",
        "tensorflow-datasets>=4.9.8",
        "tensorboard>=2.21,<2.22",
    ],
    extras_require={
        # Running exported .tflite files, and the TF Serving gRPC client in export/.
        "deploy": ["ai-edge-litert>=2.0", "tensorflow-serving-api>=2.21,<2.22"],
        # Importing the authors' .pth checkpoints (safetensors/.npz need no torch).
        "torch": ["torch>=2.2", "safetensors>=0.4"],
        # `tfcyclegan export --format onnx` (Keras 3 converts through tf2onnx) and running
        # .onnx files (`translate --model FILE.onnx`, the export's parity check).
        "onnx": ONNX,
        # The quality benchmark's photos (benchmarks/bench_quality.py, tfcyclegan.looks);
        # OpenVINO for the forward benchmark's ONNX rows (benchmarks/bench_inference.py).
        "bench": ["scikit-image>=0.22", *ONNX, "openvino>=2024.0"],
        "test": [
            "pytest>=8",
            "pytest-timeout>=2.3",
            "pytest-xdist>=3.5",
            "ruff>=0.17",  # `make lint`; the exact version is pinned in constraints.txt
            "ai-edge-litert>=2.0",
            "tensorflow-serving-api>=2.21,<2.22",
            "safetensors>=0.4",
            "scikit-image>=0.22",  # tests/test_looks.py reads the benchmark's photos
            *ONNX,  # tests/test_onnx.py
            # FID fidelity tests: our Keras FID network against pytorch-fid's, KID against
            # clean-fid. torchvision 0.28 is the release for torch 2.13; pytorch-fid 0.3.0
            # calls scipy's sqrtm(disp=False), removed in scipy 1.18.
            "torchvision==0.28.0",
            "pytorch-fid==0.3.0",
            "clean-fid==0.1.35",
            "scipy<1.18",
        ],
    },
    entry_points={"console_scripts": ["tfcyclegan=tfcyclegan.cli:main"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
        "Intended Audience :: Science/Research",
    ],
)
