"""translate_files and translate_tiled: streaming, tiles with blended seams, --load-size."""

import numpy as np
import pytest
from PIL import Image

from tfcyclegan import translate


def test_tiles_blend_back_to_the_image_for_a_pixelwise_model():
    image = np.random.default_rng(0).uniform(-1, 1, (70, 45, 3)).astype(np.float32)
    for tile, overlap in ((16, 0), (32, 8), (24, 11), (128, 8)):
        out = translate.translate_tiled(lambda x: x * 0.5, image, tile, overlap)
        np.testing.assert_allclose(out, image * 0.5, atol=1e-6, err_msg=f"{tile}/{overlap}")


def test_seams_are_linear_ramps_between_tiles():
    # Each tile comes back as one constant (its own index): inside an overlap the
    # output moves from one to the next in steps of 1/overlap, never jumps.
    calls = []

    def per_tile(batch):
        values = [len(calls) + i for i in range(len(batch))]
        calls.extend(values)
        return np.stack([np.full(b.shape, float(v), np.float32) for b, v in zip(batch, values)])

    out = translate.translate_tiled(per_tile, np.zeros((16, 56, 1), np.float32), tile=16, overlap=6, batch_size=2)
    row = out[0, :, 0]
    assert len(calls) == 5 and row[0] == 0 and row[-1] == 4
    assert np.max(np.abs(np.diff(row))) <= 1 / 6 + 1e-6


def test_a_folder_is_streamed_in_small_batches_of_one_size(tmp_path):
    sizes = [(20, 12), (20, 12), (8, 8), (20, 12), (20, 12), (20, 12), (20, 12)]
    for i, (w, h) in enumerate(sizes):
        Image.new("RGB", (w, h), (i * 30, 0, 0)).save(tmp_path / f"{i}.png")
    (tmp_path / "x_broken.png").write_bytes(b"not an image")
    seen = []

    def model(batch):
        seen.append(batch.shape)
        return batch

    report = translate.translate_files(model, tmp_path, tmp_path.parent / f"{tmp_path.name}_out",
                                       batch_size=3, progress=False)
    assert [s[:3] for s in seen] == [(2, 12, 20), (1, 8, 8), (3, 12, 20), (1, 12, 20)]
    assert len(report.written) == 7 and [p for p, _ in report.failed] == [str(tmp_path / "x_broken.png")]
    assert Image.open(tmp_path.parent / f"{tmp_path.name}_out" / "2.png").size == (8, 8)


def test_load_size_resizes_the_short_side_and_big_images_are_tiled(tmp_path, monkeypatch):
    Image.new("RGB", (60, 30), "blue").save(tmp_path / "wide.png")
    report = translate.translate_files(lambda b: b, tmp_path / "wide.png", tmp_path / "a", load_size=20,
                                       progress=False)
    assert Image.open(tmp_path / "a" / "wide.png").size == (40, 20) and not report.tiled
    monkeypatch.setattr(translate, "AUTO_TILE_MEGAPIXELS", 1e-3)  # 1000 pixels
    report = translate.translate_files(lambda b: b, tmp_path / "wide.png", tmp_path / "b", progress=False)
    assert report.tiled == [str(tmp_path / "wide.png")] and Image.open(tmp_path / "b" / "wide.png").size == (60, 30)


@pytest.mark.parametrize("kwargs, match", [
    ({"tile": 8}, "tile=8"), ({"tile": 32, "tile_overlap": 16}, "tile_overlap=16"),
    ({"load_size": 0}, "load_size=0"), ({"batch_size": 0}, "batch_size=0"),
])
def test_bad_arguments_are_named(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        translate.translate_files(lambda b: b, tmp_path, tmp_path / "o", progress=False, **kwargs)
