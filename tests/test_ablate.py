"""tfcyclegan.ablate without training: each variant's config, the unpaired view of an aligned
dataset on disk, the table, and the errors before anything trains. (One whole study, two
variants trained, runs in test_cli_paired.py.)"""

import numpy as np
import pytest
from PIL import Image

from tests.conftest import noise_image, save_image
from tfcyclegan import ablate, evaluate


@pytest.mark.parametrize(
    "variant, method, weights",
    [
        ("cyclegan", "cyclegan", dict(lambda_gan=1.0, lambda_a=10.0, lambda_b=10.0)),
        ("cycle_alone", "cyclegan", dict(lambda_gan=0.0, lambda_a=10.0, lambda_b=10.0)),
        ("gan_alone", "cyclegan", dict(lambda_gan=1.0, lambda_a=0.0, lambda_b=0.0)),
        ("gan_forward", "cyclegan", dict(lambda_a=10.0, lambda_b=0.0)),
        ("gan_backward", "cyclegan", dict(lambda_a=0.0, lambda_b=10.0)),
        ("pix2pix_l1", "pix2pix", dict(lambda_gan=0.0, lambda_l1=100.0)),
        ("pix2pix_cgan", "pix2pix", dict(lambda_gan=1.0, lambda_l1=0.0)),
        ("pix2pix_l1_cgan", "pix2pix", dict(lambda_gan=1.0, lambda_l1=100.0)),
    ],
)
def test_each_variant_is_the_papers_objective(variant, method, weights):
    config = ablate.variant_config(variant)
    assert config.model.method == method
    assert {name: getattr(config.train, name) for name in weights} == weights
    if method == "cyclegan":
        assert config.train.lambda_identity == 0.0  # Table 4 has no identity term


def test_shared_settings_reach_every_variant_and_the_variant_wins():
    settings = {"train.epochs": 3, "train.seed": 7, "model.ngf": 4, "train.lambda_b": 5.0}
    assert ablate.variant_config("cyclegan", settings=settings).train.lambda_b == 5.0
    for variant in ("gan_forward", "pix2pix_l1", "cyclegan_resize_conv"):
        config = ablate.variant_config(variant, settings=settings)
        assert (config.train.epochs, config.train.seed, config.model.ngf) == (3, 7, 4)
    assert ablate.variant_config("gan_forward", settings=settings).train.lambda_b == 0.0
    assert ablate.variant_config("cyclegan_resize_conv").model.upsample == "resize_conv"


def test_an_unknown_variant_is_named():
    with pytest.raises(ValueError, match=r"Unknown ablation variant\. Choose from \[.*\]\. Received: 'cycle'"):
        ablate.variant_config("cycle")


def _aligned(root, rng, count):
    """root/train and root/test of `count` 8x16 A|B images; returns the training halves."""
    halves = []
    for split in ("train", "test"):
        for i in range(count):
            a, b = noise_image(rng, 8, 8), noise_image(rng, 8, 8)
            save_image(root / split / f"{i}.png", np.concatenate([a, b], axis=1))
            if split == "train":
                halves.append((a, b))
    return halves


def test_the_unpaired_view_holds_the_halves_of_the_training_images(tmp_path, rng):
    halves = _aligned(tmp_path / "data", rng, 2)
    view = ablate.unpaired_view(tmp_path / "data", tmp_path / "study")
    assert sorted(p.name for p in (view / "trainA").iterdir()) == ["0.png", "1.png"]
    for i, (a, b) in enumerate(halves):
        np.testing.assert_array_equal(np.asarray(Image.open(view / "trainA" / f"{i}.png")), a)
        np.testing.assert_array_equal(np.asarray(Image.open(view / "trainB" / f"{i}.png")), b)
    # Written once: a second study in the same folder reuses it.
    (view / "trainA" / "0.png").unlink()
    assert ablate.unpaired_view(tmp_path / "data", tmp_path / "study") == view
    assert not (view / "trainA" / "0.png").exists()


@pytest.mark.parametrize("variants", [("cyclegan", "cycle"), ()])
def test_unknown_or_no_variants_are_refused_before_training(tmp_path, variants):
    with pytest.raises(ValueError, match=r"`variants` must be a subset of"):
        ablate.ablate(tmp_path, tmp_path / "study", variants=variants)
    assert not (tmp_path / "study").exists()


def test_a_dataset_without_pairs_is_refused(tmp_path, rng):
    save_image(tmp_path / "trainA" / "0.png", noise_image(rng, 8, 8))
    with pytest.raises(FileNotFoundError, match=r"needs a paired dataset with train/ and test/"):
        ablate.ablate(tmp_path, tmp_path / "study", variants=("cyclegan",))


def test_the_table_has_a_row_per_variant_after_the_input():
    def report(psnr):
        return evaluate.EvaluationReport(
            model={"path": "run", "kind": "keras"}, data={"root": "facades", "form": "aligned"},
            direction="a2b", count=2, image_size=32,
            paired={"psnr_db": {"mean": psnr, "std": 0.5}, "ssim": {"mean": 0.5, "std": 0.1},
                    "l1": {"mean": 0.2, "std": 0.01}},
            fid_note="not computed (fid=False / --no-fid).",
        )

    configs = {v: ablate.variant_config(v) for v in ("gan_forward", "pix2pix_l1")}
    table = ablate.ablation_table({"(input)": report(10.0), "gan_forward": report(12.0), "pix2pix_l1": report(15.0)},
                                  {"(input)": 0.0, "gan_forward": 61.2, "pix2pix_l1": 30.0}, configs)
    lines = table.splitlines()
    assert lines[0] == "| variant | method | PSNR dB | SSIM | L1 | FID | KID x1000 | checkerboard | train s |"
    assert lines[2].startswith("| (input) | - | 10.00 ± 0.50 |")
    assert lines[3] == "| gan_forward | cyclegan | 12.00 ± 0.50 | 0.500 ± 0.100 | 0.2000 ± 0.0100 | - | - | - | 61 |"
    assert lines[4].startswith("| pix2pix_l1 | pix2pix | 15.00 ± 0.50 |")
    assert "Test split: 2 images of facades (aligned), 32x32, direction a2b." in table
    assert "FID/KID: not computed" in table
