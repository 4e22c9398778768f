"""Importing the authors' PyTorch state_dicts: files, inference, strictness, .keras.

The reference fixtures (tests/data/reference) are state_dicts of the authors'
own networks with their outputs; every test that imports one checks the
output against the reference to FIDELITY_ATOL. Tests that need torch skip
without it.
"""

import json
import os
import pathlib
import re
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from tests.conftest import DATA
from tfcyclegan.networks import (
    PatchDiscriminator,
    PixelDiscriminator,
    ResnetGenerator,
    UnetGenerator,
)
from tfcyclegan.torch_import import (
    export_state_dict,
    import_discriminator,
    import_generator,
    import_to_keras,
    infer_discriminator,
    infer_generator,
    read_state_dict,
    write_state_dict,
)

REFERENCE = DATA / "reference"
MANIFEST = json.loads((REFERENCE / "manifest.json").read_text())["configs"]
# float32 vs float64 differs by up to 4e-6 in the reference (manifest.json).
FIDELITY_ATOL = 1e-4

# The reference's name for each fixture's generator.
NETG = {
    "a_resnet_ngf8_nb2": "resnet_2blocks",
    "b_resnet_ngf16_nb9": "resnet_9blocks",
    "c_resnet_6blocks_ngf16": "resnet_6blocks",
    "e_unet_128_ngf8": "unet_128",
}


def nhwc(array):
    return array.transpose(0, 2, 3, 1)


def reference(name):
    return dict(np.load(REFERENCE / f"{name}.npz"))


def weights_of(fixture):
    return {key: value for key, value in fixture.items() if not key.startswith("__")}


def assert_reproduces(network, fixture):
    output = np.asarray(network(nhwc(fixture["__input__"]), training=False))
    np.testing.assert_allclose(output, nhwc(fixture["__output__"]), rtol=0, atol=FIDELITY_ATOL)


# --- The reference networks, architecture read from the keys -----------------


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_reference_files_import_with_the_architecture_inferred(name):
    path = REFERENCE / f"{name}.npz"
    fixture = reference(name)
    config = MANIFEST[name]["kwargs"]
    if MANIFEST[name]["kind"] == "D":
        assert infer_discriminator(fixture) == {
            "netD": "basic",
            "input_channels": config["input_nc"],
            "ndf": config["ndf"],
            "n_layers": config["n_layers"],
            "norm": config["norm"],
        }
        network = import_discriminator(path)
    else:
        arch = infer_generator(fixture)
        assert arch["netG"] == NETG[name]
        assert (arch["input_channels"], arch["output_channels"], arch["ngf"], arch["norm"]) == (
            config["input_nc"], config["output_nc"], config["ngf"], config["norm"])
        if "n_blocks" in arch:  # a U-Net's dropout leaves no keys (tested below)
            assert arch["dropout"] == config["use_dropout"]
        network = import_generator(path)
        assert network.name == "G"
    assert_reproduces(network, fixture)


def test_export_state_dict_gives_back_the_reference_file():
    fixture = reference("a_resnet_ngf8_nb2")
    exported = export_state_dict(import_generator(fixture))
    assert list(exported) == [key for key in fixture if not key.startswith("__")]
    for key, value in exported.items():
        np.testing.assert_array_equal(value, fixture[key])


# --- File formats ---------------------------------------------------------------


def test_safetensors_and_npz_need_no_torch(tmp_path):
    fixture = reference("a_resnet_ngf8_nb2")
    for suffix in (".safetensors", ".npz"):
        path = write_state_dict(weights_of(fixture), tmp_path / f"G{suffix}")
        assert_reproduces(import_generator(path), fixture)


@pytest.mark.parametrize("zipfile_format", [True, False], ids=["zip", "legacy"])
def test_pth_files_written_by_torch_save(tmp_path, zipfile_format):
    # legacy: the pre-1.6 format of the authors' 2017-2018 pretrained files.
    torch = pytest.importorskip("torch")
    fixture = reference("a_resnet_ngf8_nb2")
    state_dict = {key: torch.from_numpy(value) for key, value in weights_of(fixture).items()}
    path = tmp_path / "latest_net_G.pth"
    torch.save(state_dict, path, _use_new_zipfile_serialization=zipfile_format)
    assert_reproduces(import_generator(path), fixture)


def test_data_parallel_prefix_is_dropped():
    fixture = reference("a_resnet_ngf8_nb2")
    prefixed = {f"module.{key}": value for key, value in weights_of(fixture).items()}
    assert infer_generator(prefixed)["netG"] == "resnet_2blocks"
    assert_reproduces(import_generator(prefixed), fixture)


def test_dropout_is_read_from_the_shifted_keys():
    # Dropout between a block's convolutions moves the second from .5 to .6.
    fixture = reference("a_resnet_ngf8_nb2")
    shifted = {
        key.replace("conv_block.5.", "conv_block.6."): value
        for key, value in weights_of(fixture).items()
    }
    assert infer_generator(shifted)["dropout"] is True
    network = import_generator(shifted)
    assert network.dropout
    assert_reproduces(network, fixture)  # dropout is inactive at inference


def test_unused_instance_norm_statistics_of_old_files_are_dropped():
    # The authors' pretrained CycleGANs (PyTorch 0.3/0.4 era) carry these
    # buffers on every InstanceNorm; their own loader removes them.
    fixture = reference("a_resnet_ngf8_nb2")
    norms = ["model.2", "model.5", "model.8", "model.13", "model.16"] + [
        f"model.{b}.conv_block.{i}" for b in (10, 11) for i in (2, 6)
    ]
    old = dict(weights_of(fixture))
    for prefix in norms:
        old[f"{prefix}.running_mean"] = np.zeros(4, np.float32)
        old[f"{prefix}.running_var"] = np.ones(4, np.float32)
        old[f"{prefix}.num_batches_tracked"] = np.array(7)
    assert infer_generator(old)["norm"] == "instance"
    assert_reproduces(import_generator(old), fixture)


# --- Batch norm (pix2pix) ---------------------------------------------------------


def torch_unet(nn, input_nc, output_nc, num_downs, ngf):
    """pix2pix's U-Net (norm="batch", dropout) as the authors' PyTorch names it.

    Nested blocks: `model` is [down..., submodule, up...], the skip keeps the
    block's input after the in-place LeakyReLU, as in the reference.
    """
    import torch

    class Block(nn.Module):
        def __init__(self, outer, inner, sub=None, input_nc=None, outermost=False, dropout=False):
            super().__init__()
            self.outermost = outermost
            down = nn.Conv2d(input_nc or outer, inner, 4, 2, 1, bias=False)
            up_in = inner if sub is None else 2 * inner
            if outermost:
                up = nn.ConvTranspose2d(up_in, outer, 4, 2, 1)
                layers = [down, sub, nn.ReLU(True), up, nn.Tanh()]
            else:
                up = nn.ConvTranspose2d(up_in, outer, 4, 2, 1, bias=False)
                layers = [nn.LeakyReLU(0.2, True), down]
                if sub is not None:  # not the innermost block
                    layers += [nn.BatchNorm2d(inner), sub]
                layers += [nn.ReLU(True), up, nn.BatchNorm2d(outer)]
                layers += [nn.Dropout(0.5)] if dropout else []
            self.model = nn.Sequential(*layers)

        def forward(self, x):
            return self.model(x) if self.outermost else torch.cat([x, self.model(x)], 1)

    class Unet(nn.Module):
        def __init__(self):
            super().__init__()
            block = Block(8 * ngf, 8 * ngf)
            for _ in range(num_downs - 5):
                block = Block(8 * ngf, 8 * ngf, block, dropout=True)
            for mult in (4, 2, 1):
                block = Block(mult * ngf, 2 * mult * ngf, block)
            self.model = Block(output_nc, ngf, block, input_nc=input_nc, outermost=True)

        def forward(self, x):
            return self.model(x)

    return Unet()


def test_pix2pix_batch_norm_unet_saved_by_torch(tmp_path, rng):
    torch = pytest.importorskip("torch")
    nn = torch.nn
    torch.manual_seed(0)
    net = torch_unet(nn, input_nc=1, output_nc=3, num_downs=6, ngf=2)
    with torch.no_grad():  # running statistics that differ from the defaults
        for _ in range(3):
            net(torch.randn(2, 1, 64, 64))
        for module in net.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.5)
                module.bias.normal_(0.0, 0.2)
    path = tmp_path / "facades_label2photo.pth"
    torch.save(net.state_dict(), path)  # with num_batches_tracked and _metadata
    x = rng.uniform(-1, 1, (1, 64, 64, 1)).astype("float32")

    def torch_output(train):
        net.train(train)
        for module in net.modules():
            if isinstance(module, nn.Dropout):
                module.eval()  # compare without the dropout noise
        with torch.no_grad():
            return net(torch.from_numpy(x.transpose(0, 3, 1, 2))).numpy().transpose(0, 2, 3, 1)

    # Eval first: a forward pass in training mode updates the running statistics.
    torch_eval, torch_train = torch_output(train=False), torch_output(train=True)
    assert np.abs(torch_eval - torch_train).max() > 0.1  # the choice matters

    arch = infer_generator(read_state_dict(path))
    assert arch == {
        "netG": "unet_64", "input_channels": 1, "output_channels": 3, "ngf": 2,
        "num_downs": 6, "norm": "batch", "dropout": True,
    }
    # Default: each image's statistics, like the authors' test.py (no eval()).
    image = import_generator(path)
    np.testing.assert_allclose(image(x), torch_train, atol=FIDELITY_ATOL)
    # "moving": the running statistics, like PyTorch's eval() / test.py --eval.
    moving = import_generator(path, bn_statistics="moving", dropout=False)
    assert isinstance(moving, UnetGenerator) and moving.norm == "batch"
    np.testing.assert_allclose(moving(x, training=False), torch_eval, atol=FIDELITY_ATOL)
    np.testing.assert_allclose(moving(x, training=True), torch_train, atol=FIDELITY_ATOL)


def test_batch_norm_resnet_asks_for_moving_statistics():
    state_dict = export_state_dict(ResnetGenerator(ngf=2, n_blocks=1, norm="batch"))
    with pytest.raises(ValueError, match=r"bn_statistics='image' is available for U-Net .*"
                                         r"Received: bn_statistics='image'"):
        import_generator(state_dict)
    assert import_generator(state_dict, bn_statistics="moving").norm == "batch"


# --- Round trips through export_state_dict ----------------------------------------


def randomize(network, rng):
    """Weights far from the initial ones, positive variances, so nothing hides."""
    for variable in network.weights:
        shape = tuple(variable.shape)
        if variable.path.endswith("moving_variance"):
            value = rng.uniform(0.5, 2.0, shape)
        else:
            value = rng.normal(0.0, 0.3, shape)
        variable.assign(value.astype("float32"))
    return network


ROUND_TRIPS = {
    "resnet_batch_dropout": lambda: ResnetGenerator(ngf=2, n_blocks=2, norm="batch", dropout=True),
    "unet_batch": lambda: UnetGenerator(ngf=2, num_downs=5, norm="batch", dropout=True),
    "patch_batch": lambda: PatchDiscriminator(ndf=2, n_layers=2, norm="batch"),
    "pixel_instance": lambda: PixelDiscriminator(ndf=2),
}


@pytest.mark.parametrize("kind", sorted(ROUND_TRIPS))
def test_export_then_import_is_the_identity(kind, tmp_path, rng):
    original = randomize(ROUND_TRIPS[kind](), rng)
    path = write_state_dict(export_state_dict(original), tmp_path / "net.npz")
    if kind.startswith(("patch", "pixel")):
        imported = import_discriminator(path)
    else:
        imported = import_generator(path, bn_statistics="moving")
    assert type(imported) is type(original)
    assert imported.get_config() | {"name": None, "seed": None} == (
        original.get_config() | {"name": None, "seed": None})
    for a, b in zip(original.weights, imported.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_norm_none_files_have_no_convolution_biases(rng):
    # The reference's norm="none" layers get no bias (only the last one does);
    # tfcyclegan's have one, which must load as zero.
    network = randomize(ResnetGenerator(ngf=2, n_blocks=1, norm="none"), rng)
    block = network.get_layer("block0")
    for layer in network.layers + [block.conv1, block.conv2]:
        if getattr(layer, "bias", None) is not None and layer.name != "head_conv":
            layer.bias.assign(np.zeros(layer.bias.shape, "float32"))
    state_dict = {
        key: value
        for key, value in export_state_dict(network).items()
        if not key.endswith(".bias") or key == "model.18.bias"
    }
    assert infer_generator(state_dict)["norm"] == "none"
    x = rng.uniform(-1, 1, (1, 16, 16, 3)).astype("float32")
    np.testing.assert_array_equal(import_generator(state_dict)(x), network(x))


# --- Files and states that must be refused, with the reason ---------------------


def test_discriminator_file_given_as_generator():
    with pytest.raises(ValueError, match=r"d_patchgan_ndf8_nl3\.npz: The state_dict holds a "
                                         r"PatchGAN discriminator .*not a generator"):
        import_generator(REFERENCE / "d_patchgan_ndf8_nl3.npz")


def test_generator_file_given_as_discriminator():
    with pytest.raises(ValueError, match=r"holds a ResNet generator .*not a discriminator"):
        import_discriminator(REFERENCE / "a_resnet_ngf8_nb2.npz")


def test_state_dict_of_another_network():
    with pytest.raises(ValueError, match=r"does not look like a network .* \['fc\.weight'\]"):
        infer_generator({"fc.weight": np.zeros((2, 3))})


@pytest.mark.parametrize("suffix", [".npz", ".safetensors", ".pth"])
def test_truncated_files_are_named(tmp_path, suffix):
    if suffix == ".pth":
        pytest.importorskip("torch")
    path = write_state_dict(weights_of(reference("a_resnet_ngf8_nb2")), tmp_path / f"G{suffix}")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ValueError, match=rf"{re.escape(str(path))} is not a readable .*truncated"):
        read_state_dict(path)


def test_extra_keys_are_listed():
    state_dict = weights_of(reference("a_resnet_ngf8_nb2"))
    state_dict["model.99.weight"] = np.zeros((3, 3, 1, 1), np.float32)
    with pytest.raises(ValueError, match=r"unexpected keys \(1\): model\.99\.weight"):
        import_generator(state_dict)


def test_missing_keys_are_listed():
    state_dict = weights_of(reference("a_resnet_ngf8_nb2"))
    del state_dict["model.12.bias"]
    with pytest.raises(ValueError, match=r"missing keys \(1\): model\.12\.bias"):
        import_generator(state_dict)


def test_shape_mismatches_are_listed():
    state_dict = weights_of(reference("a_resnet_ngf8_nb2"))
    state_dict["model.4.weight"] = state_dict["model.4.weight"][:, :, :, :2]
    with pytest.raises(ValueError, match=re.escape(
            "model.4.weight: got shape (16, 8, 3, 2), expected (16, 8, 3, 3)")):
        import_generator(state_dict)


def _leave_a_mark(path):
    """What a malicious pickle would run; weights_only must never call it."""
    pathlib.Path(path).write_text("unpickled")


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (_leave_a_mark, (self.marker,))


def test_pickled_code_is_refused(tmp_path):
    torch = pytest.importorskip("torch")
    marker = tmp_path / "marker"
    path = tmp_path / "latest_net_G.pth"
    torch.save({"model.1.weight": torch.zeros(1), "x": _Payload(str(marker))}, path)
    with pytest.raises(ValueError, match=r"objects besides tensors.*weights_only=True"):
        read_state_dict(path)
    assert not marker.exists()


def test_training_checkpoint_wrapping_a_state_dict_is_explained(tmp_path):
    torch = pytest.importorskip("torch")
    path = tmp_path / "checkpoint.pth"
    torch.save({"state_dict": {"model.1.weight": torch.zeros(1)}, "epoch": 3}, path)
    with pytest.raises(ValueError, match=r"not a plain state_dict.*under 'state_dict'"):
        read_state_dict(path)


def test_pth_without_torch_says_how_to_install_it(tmp_path, monkeypatch):
    path = tmp_path / "latest_net_G.pth"
    path.write_bytes(b"not read")
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` fails
    with pytest.raises(ImportError, match=r"pip install 'tfcyclegan\[torch\]'.*\.safetensors"):
        read_state_dict(path)


def test_unknown_suffix_and_missing_file(tmp_path):
    (tmp_path / "G.h5").write_bytes(b"")
    with pytest.raises(ValueError, match=r"Received: suffix='\.h5'"):
        read_state_dict(tmp_path / "G.h5")
    with pytest.raises(FileNotFoundError, match="No state_dict file at"):
        read_state_dict(tmp_path / "absent.pth")


@pytest.mark.parametrize(
    "flags, match",
    [
        ({"netG": "resnet_9blocks"}, r"holds resnet_2blocks .* Received: netG='resnet_9blocks'"),
        ({"netG": "unet_256"}, r"Received: netG='unet_256'"),
        ({"ngf": 64}, r"`ngf` does not match the file, which holds .* Received: ngf=64"),
        ({"norm": "batch"}, r"norm='instance'\)\. .* Received: norm='batch'"),
        ({"dropout": True}, r"dropout=False\. .* Received: dropout=True"),
        ({"netG": "resnet"}, r"generator=.resnet."),
        ({"bn_statistics": "eval"}, r"Received: bn_statistics='eval'"),
    ],
)
def test_flags_that_conflict_with_the_file(flags, match):
    with pytest.raises(ValueError, match=match):
        import_generator(REFERENCE / "a_resnet_ngf8_nb2.npz", **flags)


def test_flags_that_agree_with_the_file_are_accepted():
    fixture = reference("a_resnet_ngf8_nb2")
    network = import_generator(
        fixture, netG="resnet_2blocks", ngf=8, norm="instance", dropout=False, name="F")
    assert network.name == "F"
    assert_reproduces(network, fixture)


def test_import_to_keras_needs_a_keras_suffix(tmp_path):
    with pytest.raises(ValueError, match=r"Received: out='.*model\.h5'"):
        import_to_keras(REFERENCE / "a_resnet_ngf8_nb2.npz", tmp_path / "model.h5")


# --- The saved .keras file ---------------------------------------------------------


def test_import_to_keras_replaces_a_file_only_when_told(tmp_path):
    out = tmp_path / "G.keras"
    out.write_bytes(b"the user's model")
    source = REFERENCE / "a_resnet_ngf8_nb2.npz"
    with pytest.raises(FileExistsError, match=r"G\.keras already exists.*--overwrite"):
        import_to_keras(source, out)
    assert out.read_bytes() == b"the user's model"
    import_to_keras(source, out, overwrite=True)
    assert zipfile.is_zipfile(out) and not [p for p in os.listdir(tmp_path) if p.startswith(".")]


@pytest.mark.slow
def test_imported_keras_files_reload_in_a_fresh_process(tmp_path, rng):
    fixture = reference("a_resnet_ngf8_nb2")
    source = write_state_dict(weights_of(fixture), tmp_path / "horse2zebra.npz")
    cyclegan, cyclegan_path = import_to_keras(source)
    assert cyclegan_path == tmp_path / "horse2zebra.keras"
    pix2pix_source = write_state_dict(
        export_state_dict(randomize(UnetGenerator(ngf=2, num_downs=5, norm="batch"), rng)),
        tmp_path / "facades.npz",
    )
    pix2pix, pix2pix_path = import_to_keras(pix2pix_source, tmp_path / "out" / "G.keras")
    x = {
        "horse2zebra": nhwc(fixture["__input__"]),
        "facades": rng.uniform(-1, 1, (1, 32, 32, 3)).astype("float32"),
    }
    expected = {
        "horse2zebra": np.asarray(cyclegan(x["horse2zebra"])),
        "facades": np.asarray(pix2pix(x["facades"])),
    }
    for name, value in x.items():
        np.save(tmp_path / f"{name}_x.npy", value)
    script = (
        "import sys, numpy as np, keras, tfcyclegan\n"
        "for name, path in (('horse2zebra', sys.argv[2]), ('facades', sys.argv[3])):\n"
        "    model = keras.saving.load_model(path)\n"
        "    x = np.load(f'{sys.argv[1]}/{name}_x.npy')\n"
        "    np.save(f'{sys.argv[1]}/{name}_y.npy', np.asarray(model(x)))\n"
    )
    subprocess.run(
        [sys.executable, "-c", script, str(tmp_path), str(cyclegan_path), str(pix2pix_path)],
        check=True,
    )
    for name, value in expected.items():
        np.testing.assert_array_equal(np.load(tmp_path / f"{name}_y.npy"), value)
    np.testing.assert_allclose(
        expected["horse2zebra"], nhwc(fixture["__output__"]), atol=FIDELITY_ATOL)
