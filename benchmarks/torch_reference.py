"""A PyTorch stand-in for the authors' CycleGAN training iteration, to time against.

The official code (junyanz/pytorch-CycleGAN-and-pix2pix) cannot be vendored,
so this file re-implements, from its documented behaviour
(/work/shared/reference/README.md), exactly what one of its training
iterations computes at the paper's settings:

- `ResnetGenerator`: reflection pad 3, 7x7 conv, IN, ReLU; two stride-2 3x3
  convs (zero pad 1); n `ResnetBlock`s [reflection pad 1, 3x3 conv, IN, ReLU,
  reflection pad 1, 3x3 conv, IN] added to their input; two ConvTranspose2d(3,
  stride 2, pad 1, output_padding 1), IN, ReLU; reflection pad 3, 7x7 conv, tanh.
  IN is `InstanceNorm2d(affine=False)`, so every conv carries a bias.
- `NLayerDiscriminator`: the 70x70 PatchGAN with LeakyReLU(0.2).
- `ReferenceCycleGAN.optimize_parameters`: forward G_A(A), G_B(G_A(A)),
  G_B(B), G_A(G_B(B)); the generators' step with both discriminators frozen
  (LSGAN MSE against 1, cycle L1 x 10, identity L1 x 10 x 0.5); then the
  discriminators' step on pooled fakes (MSE to 1 for real, 0 for fake, halved),
  one Adam(2e-4, betas (0.5, 0.999)) for both generators and one for both
  discriminators, the 50-image history pool.

Module and parameter names follow the reference's (`model.10.conv_block.1.weight`),
so `tfcyclegan.torch_import.export_state_dict(network)` loads straight into
these modules. `check_fidelity` verifies the harness: parameter counts, the
authors' own outputs in /work/shared/reference/pytorch-cyclegan (or
tests/data/reference), and our Keras networks' forward passes with the same
weights, each to 1e-4.

    python benchmarks/torch_reference.py            # fidelity checks, then time 3 steps
    python benchmarks/torch_reference.py --size 128 --steps 5 --threads 2

Importable: `ResnetGenerator`, `NLayerDiscriminator`, `ReferenceCycleGAN`,
`TorchTrainStep`, `TorchGeneratorForward`, `check_fidelity`, `FidelityCheck`.
"""

import argparse
import os
import pathlib
import random
import sys
import time

import numpy as np
import torch
from torch import nn

REPO = pathlib.Path(__file__).resolve().parent.parent
REFERENCE_DIRS = (
    pathlib.Path("/work/shared/reference/pytorch-cyclegan"),
    REPO / "tests" / "data" / "reference",
)
RESNET9_PARAMS = 11_378_179
PATCHGAN_PARAMS = 2_764_737


def _instance_norm(channels):
    # The reference's get_norm_layer("instance").
    return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)


class ResnetBlock(nn.Module):
    """x + conv_block(x); conv_block indices 1 and 5 are the convolutions."""

    def __init__(self, dim, use_dropout=False):
        super().__init__()
        layers = [
            nn.ReflectionPad2d(1),
            nn.Conv2d(dim, dim, 3, padding=0, bias=True),
            _instance_norm(dim),
            nn.ReLU(True),
        ]
        if use_dropout:
            layers.append(nn.Dropout(0.5))
        layers += [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, padding=0, bias=True), _instance_norm(dim)]
        self.conv_block = nn.Sequential(*layers)

    def forward(self, x):
        return x + self.conv_block(x)


class ResnetGenerator(nn.Module):
    """The reference's ResNet generator with instance norm (keys `model.<i>.*`)."""

    def __init__(self, input_nc=3, output_nc=3, ngf=64, n_blocks=9, use_dropout=False):
        super().__init__()
        layers = [
            nn.ReflectionPad2d(3),
            nn.Conv2d(input_nc, ngf, 7, padding=0, bias=True),
            _instance_norm(ngf),
            nn.ReLU(True),
        ]
        for i in range(2):
            mult = 2**i
            layers += [
                nn.Conv2d(ngf * mult, ngf * mult * 2, 3, stride=2, padding=1, bias=True),
                _instance_norm(ngf * mult * 2),
                nn.ReLU(True),
            ]
        layers += [ResnetBlock(ngf * 4, use_dropout) for _ in range(n_blocks)]
        for i in range(2):
            mult = 2 ** (2 - i)
            layers += [
                nn.ConvTranspose2d(
                    ngf * mult, ngf * mult // 2, 3, stride=2, padding=1, output_padding=1, bias=True
                ),
                _instance_norm(ngf * mult // 2),
                nn.ReLU(True),
            ]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, output_nc, 7, padding=0), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        return self.model(x)


class NLayerDiscriminator(nn.Module):
    """The reference's PatchGAN with instance norm (70x70 with n_layers=3)."""

    def __init__(self, input_nc=3, ndf=64, n_layers=3):
        super().__init__()
        layers = [nn.Conv2d(input_nc, ndf, 4, stride=2, padding=1), nn.LeakyReLU(0.2, True)]
        mult = 1
        for n in range(1, n_layers + 1):
            previous, mult = mult, min(2**n, 8)
            layers += [
                nn.Conv2d(ndf * previous, ndf * mult, 4, stride=2 if n < n_layers else 1, padding=1, bias=True),
                _instance_norm(ndf * mult),
                nn.LeakyReLU(0.2, True),
            ]
        layers.append(nn.Conv2d(ndf * mult, 1, 4, stride=1, padding=1))
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        return self.model(x)


def _init_normal(module, gain=0.02, generator=None):
    # The reference's init_weights("normal"): N(0, 0.02) weights, zero biases.
    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(layer.weight, 0.0, gain, generator=generator)
            nn.init.zeros_(layer.bias)


class ImagePool:
    """The 50-image history buffer (reference `util/image_pool.py` behaviour)."""

    def __init__(self, pool_size=50, seed=0):
        self.pool_size = pool_size
        self.images = []
        self.random = random.Random(seed)

    def query(self, images):
        if self.pool_size == 0:
            return images
        returned = []
        for image in images.detach():
            image = image.unsqueeze(0)
            if len(self.images) < self.pool_size:
                self.images.append(image)
                returned.append(image)
            elif self.random.uniform(0, 1) > 0.5:
                slot = self.random.randint(0, self.pool_size - 1)
                returned.append(self.images[slot].clone())
                self.images[slot] = image
            else:
                returned.append(image)
        return torch.cat(returned, 0)


class ReferenceCycleGAN:
    """G_A, G_B, D_A, D_B, two Adams, two pools and `optimize_parameters`.

    Reference names: G_A is our G (X -> Y), G_B our F, D_A judges B (our D_Y),
    D_B judges A (our D_X).
    """

    def __init__(self, ngf=64, ndf=64, n_blocks=9, pool_size=50, lambda_a=10.0,
                 lambda_b=10.0, lambda_identity=0.5, seed=0):
        generator = torch.Generator().manual_seed(seed)
        self.G_A = ResnetGenerator(ngf=ngf, n_blocks=n_blocks)
        self.G_B = ResnetGenerator(ngf=ngf, n_blocks=n_blocks)
        self.D_A = NLayerDiscriminator(ndf=ndf)
        self.D_B = NLayerDiscriminator(ndf=ndf)
        for net in self.networks():
            _init_normal(net, generator=generator)
            net.train()
        self.optimizer_G = torch.optim.Adam(
            list(self.G_A.parameters()) + list(self.G_B.parameters()), lr=2e-4, betas=(0.5, 0.999)
        )
        self.optimizer_D = torch.optim.Adam(
            list(self.D_A.parameters()) + list(self.D_B.parameters()), lr=2e-4, betas=(0.5, 0.999)
        )
        self.fake_A_pool = ImagePool(pool_size, seed)
        self.fake_B_pool = ImagePool(pool_size, seed + 1)
        self.lambda_a, self.lambda_b, self.lambda_identity = lambda_a, lambda_b, lambda_identity
        self.mse = nn.MSELoss()
        self.l1 = nn.L1Loss()
        self.losses = {}

    def networks(self):
        return (self.G_A, self.G_B, self.D_A, self.D_B)

    def gan_loss(self, prediction, target_is_real):
        # LSGAN: MSE against a tensor of 1s (real) or 0s (fake) of the prediction's shape.
        target = torch.tensor(1.0 if target_is_real else 0.0).expand_as(prediction)
        return self.mse(prediction, target)

    def set_input(self, real_a, real_b):
        self.real_A, self.real_B = real_a, real_b

    def forward(self):
        self.fake_B = self.G_A(self.real_A)
        self.rec_A = self.G_B(self.fake_B)
        self.fake_A = self.G_B(self.real_B)
        self.rec_B = self.G_A(self.fake_A)

    def backward_G(self):
        lam_a, lam_b, lam_idt = self.lambda_a, self.lambda_b, self.lambda_identity
        losses = {}
        if lam_idt > 0:
            self.idt_A = self.G_A(self.real_B)
            losses["idt_A"] = self.l1(self.idt_A, self.real_B) * lam_b * lam_idt
            self.idt_B = self.G_B(self.real_A)
            losses["idt_B"] = self.l1(self.idt_B, self.real_A) * lam_a * lam_idt
        else:
            losses["idt_A"] = losses["idt_B"] = torch.tensor(0.0)
        losses["G_A"] = self.gan_loss(self.D_A(self.fake_B), True)
        losses["G_B"] = self.gan_loss(self.D_B(self.fake_A), True)
        losses["cycle_A"] = self.l1(self.rec_A, self.real_A) * lam_a
        losses["cycle_B"] = self.l1(self.rec_B, self.real_B) * lam_b
        loss_G = sum(losses.values())
        loss_G.backward()
        self.losses.update(losses, G=loss_G)

    def backward_D_basic(self, net, real, fake):
        loss_real = self.gan_loss(net(real), True)
        loss_fake = self.gan_loss(net(fake.detach()), False)
        loss = (loss_real + loss_fake) * 0.5
        loss.backward()
        return loss

    def optimize_parameters(self):
        self.forward()
        for net in (self.D_A, self.D_B):
            net.requires_grad_(False)
        self.optimizer_G.zero_grad()
        self.backward_G()
        self.optimizer_G.step()
        for net in (self.D_A, self.D_B):
            net.requires_grad_(True)
        self.optimizer_D.zero_grad()
        fake_B = self.fake_B_pool.query(self.fake_B)
        self.losses["D_A"] = self.backward_D_basic(self.D_A, self.real_B, fake_B)
        fake_A = self.fake_A_pool.query(self.fake_A)
        self.losses["D_B"] = self.backward_D_basic(self.D_B, self.real_A, fake_A)
        self.optimizer_D.step()


def set_threads(threads):
    """torch.set_num_threads(threads): the intra-op threads every candidate gets."""
    torch.set_num_threads(threads)


def _images(size, count, seed):
    rng = np.random.default_rng(seed)
    return [
        torch.from_numpy(rng.uniform(-1, 1, (1, 3, size, size)).astype(np.float32))
        for _ in range(count)
    ]


class TorchTrainStep:
    """One reference training iteration at `size` px per `run()` call (batch 1).

    Cycles through a few fixed random images, as a data loader would hand
    new ones each step; data loading itself is not timed.
    """

    def __init__(self, size=256, threads=2, ngf=64, n_blocks=9, seed=0):
        set_threads(threads)
        torch.manual_seed(seed)
        self.model = ReferenceCycleGAN(ngf=ngf, n_blocks=n_blocks, seed=seed)
        self.batches = list(zip(_images(size, 4, seed), _images(size, 4, seed + 1)))
        self.count = 0

    def run(self):
        a, b = self.batches[self.count % len(self.batches)]
        self.count += 1
        self.model.set_input(a, b)
        self.model.optimize_parameters()
        return float(self.model.losses["G"].detach())


class TorchGeneratorForward:
    """One ResNet generator forward (eval, no grad) per `run()` call."""

    def __init__(self, size=256, threads=2, ngf=64, n_blocks=9, seed=0):
        set_threads(threads)
        torch.manual_seed(seed)
        self.net = ResnetGenerator(ngf=ngf, n_blocks=n_blocks).eval()
        _init_normal(self.net, generator=torch.Generator().manual_seed(seed))
        self.image = _images(size, 1, seed)[0]

    def run(self):
        with torch.inference_mode():
            return self.net(self.image)


def count_params(module):
    return sum(p.numel() for p in module.parameters())


def _reference_fixture(name):
    for folder in REFERENCE_DIRS:
        path = folder / f"{name}.npz"
        if path.exists():
            return dict(np.load(path))
    return None


def _load(module, state_dict):
    tensors = {k: torch.from_numpy(np.asarray(v)) for k, v in state_dict.items() if not k.startswith("__")}
    module.load_state_dict(tensors, strict=True)
    return module


def check_fidelity(size=64, atol=1e-4):
    """Checks this harness computes what the authors' code and ours compute.

    Returns a list of (check, max abs difference or count, passed) rows:
    parameter counts; the authors' stored outputs (ResNet and PatchGAN
    fixtures) from these modules; and our Keras ResNet-9 ngf 64 and 70x70
    PatchGAN, weights copied with `export_state_dict`, against these modules
    on a `size`-px image.
    """
    rows = []
    g, d = ResnetGenerator(), NLayerDiscriminator()
    rows.append(("ResNet-9 ngf 64 parameters", count_params(g), count_params(g) == RESNET9_PARAMS))
    rows.append(("PatchGAN ndf 64 parameters", count_params(d), count_params(d) == PATCHGAN_PARAMS))

    fixtures = {
        "a_resnet_ngf8_nb2": lambda: ResnetGenerator(ngf=8, n_blocks=2),
        "b_resnet_ngf16_nb9": lambda: ResnetGenerator(ngf=16, n_blocks=9),
        "c_resnet_6blocks_ngf16": lambda: ResnetGenerator(ngf=16, n_blocks=6),
        "d_patchgan_ndf8_nl3": lambda: NLayerDiscriminator(ndf=8, n_layers=3),
    }
    for name, build in fixtures.items():
        fixture = _reference_fixture(name)
        if fixture is None:
            continue
        net = _load(build().eval(), fixture)
        with torch.no_grad():
            out = net(torch.from_numpy(fixture["__input__"])).numpy()
        diff = float(np.max(np.abs(out - fixture["__output__"])))
        rows.append((f"authors' output {name}", diff, diff <= atol))

    sys.path.insert(0, str(REPO))
    from tfcyclegan.networks import PatchDiscriminator
    from tfcyclegan.networks import ResnetGenerator as KerasResnet
    from tfcyclegan.torch_import import export_state_dict

    image = np.random.default_rng(0).uniform(-1, 1, (1, size, size, 3)).astype(np.float32)
    for label, keras_net, torch_net in (
        ("Keras ResNet-9 ngf 64 vs this", KerasResnet(ngf=64, n_blocks=9, seed=1), ResnetGenerator()),
        ("Keras PatchGAN ndf 64 vs this", PatchDiscriminator(ndf=64, seed=2), NLayerDiscriminator()),
    ):
        _load(torch_net.eval(), export_state_dict(keras_net))
        ours = np.asarray(keras_net(image, training=False)).transpose(0, 3, 1, 2)
        with torch.no_grad():
            theirs = torch_net(torch.from_numpy(image.transpose(0, 3, 1, 2).copy())).numpy()
        diff = float(np.max(np.abs(ours - theirs)))
        rows.append((f"{label} ({size} px)", diff, diff <= atol))
    return rows


class FidelityCheck:
    """`check_fidelity` as a `common.Worker` candidate (its own process)."""

    def __init__(self, size=64):
        self.rows = check_fidelity(size)

    def result(self):
        return self.rows

    def run(self):
        return None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-checks", action="store_true")
    args = parser.parse_args(argv)
    print(f"torch {torch.__version__}, {args.threads} threads, {os.cpu_count()} CPUs")
    if not args.skip_checks:
        for check, value, passed in check_fidelity():
            shown = f"{value:,}" if isinstance(value, int) else f"{value:.2e}"
            print(f"  {'ok  ' if passed else 'FAIL'} {check}: {shown}")
    step = TorchTrainStep(args.size, args.threads)
    for i in range(args.steps + 1):
        start = time.perf_counter()
        step.run()
        seconds = time.perf_counter() - start
        print(f"  step {i}{' (warm-up)' if i == 0 else ''}: {seconds:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
