"""Image loading, the AffectNet+ image processor, and the torch dataset/dataloader."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from affectnetplus_hf.image_processing import (
    AffectNetPlusImageProcessor,
    FaceImageDataset,
    clamp_box,
    make_dataloader,
)
from affectnetplus_hf.images import BadImageError, load_image
from affectnetplus_hf.models.configuration_affectnetplus import IMAGENET_MEAN, IMAGENET_STD
from affectnetplus_hf.records import FaceRecord


def _png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _jpeg_file(path: Path, array: np.ndarray, quality: int = 95) -> Path:
    Image.fromarray(array).save(path, format="JPEG", quality=quality)
    return path


def _gradient(height: int, width: int) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([(x * 255 // max(width - 1, 1)), (y * 255 // max(height - 1, 1)), (x + y) % 256], -1).astype(
        np.uint8
    )


# ---------------------------------------------------------------------------------------------- load_image
def test_load_image_inputs(tmp_path: Path) -> None:
    array = _gradient(12, 20)
    path = tmp_path / "a.png"
    Image.fromarray(array).save(path)
    for source in (path, str(path), path.read_bytes(), Image.fromarray(array), array):
        image = load_image(source)
        assert image.mode == "RGB" and image.size == (20, 12)
        np.testing.assert_array_equal(np.asarray(image), array)
    grey = array[:, :, 0]
    for source in (grey, grey[:, :, None]):
        np.testing.assert_array_equal(np.asarray(load_image(source)), np.repeat(grey[:, :, None], 3, axis=2))
    record = FaceRecord(image_id="x", image_bytes=path.read_bytes())
    np.testing.assert_array_equal(np.asarray(load_image(record)), array)


@pytest.mark.parametrize("mode", ["L", "LA", "RGBA", "P", "CMYK", "1"])
def test_load_image_modes_become_rgb(mode: str) -> None:
    image = Image.fromarray(_gradient(6, 6)).convert(mode)
    loaded = load_image(image if mode == "CMYK" else _png_bytes(image))  # PNG cannot hold CMYK
    assert loaded.mode == "RGB" and loaded.size == (6, 6)
    expected = image.convert("RGBA").convert("RGB") if mode in ("P",) else image.convert("RGB")
    np.testing.assert_array_equal(np.asarray(loaded), np.asarray(expected))


def test_load_16_bit_and_32_bit_images(tmp_path: Path) -> None:
    values = np.array([[0, 257 * 100, 65535]], dtype=np.uint16)
    path = tmp_path / "deep.png"
    Image.fromarray(values).save(path)
    assert Image.open(path).mode.startswith("I")
    loaded = np.asarray(load_image(path))
    assert loaded[0, :, 0].tolist() == [0, 100, 255] and (loaded[..., 0] == loaded[..., 2]).all()
    as_int = Image.fromarray(values.astype(np.int32), mode="I")
    assert np.asarray(load_image(as_int))[0, :, 1].tolist() == [0, 100, 255]
    as_float = Image.fromarray(np.array([[-3.0, 12.4, 400.0]], dtype=np.float32), mode="F")
    assert np.asarray(load_image(as_float))[0, :, 0].tolist() == [0, 12, 255]


def test_bad_images_name_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.jpg"
    with pytest.raises(BadImageError, match=r"nope.jpg: image file missing"):
        load_image(missing)
    good = _jpeg_file(tmp_path / "good.jpg", _gradient(64, 64))
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    with pytest.raises(BadImageError, match=r"truncated.jpg: cannot decode image, truncated or corrupt"):
        load_image(truncated)
    garbage = tmp_path / "garbage.png"
    garbage.write_bytes(b"definitely not an image")
    with pytest.raises(BadImageError, match=r"garbage.png: not a readable image"):
        load_image(garbage)
    with pytest.raises(BadImageError, match=r"record-7: not a readable image"):
        load_image(b"\x00\x01", location="record-7")
    assert issubclass(BadImageError, ValueError)


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.zeros((4, 4, 4), dtype=np.uint8), r"got shape \(4, 4, 4\) with 4 channels"),
        (np.zeros((4, 4, 2), dtype=np.uint8), r"with 2 channels"),
        (np.zeros((3, 4, 4), dtype=np.uint8)[:, :, :0], r"with 0 channels"),
        (np.zeros((2, 2, 2, 3), dtype=np.uint8), r"expected an array of shape \(H, W\) or \(H, W, 3\)"),
        (np.zeros((4, 4, 3), dtype=np.float32), r"expected a uint8 array"),
    ],
)
def test_bad_arrays(array: np.ndarray, message: str) -> None:
    with pytest.raises(BadImageError, match=message):
        load_image(array)
    with pytest.raises(BadImageError, match=message):
        AffectNetPlusImageProcessor(size=8)(array)


def test_clamp_box() -> None:
    assert clamp_box(None, 40, 30) == (0.0, 0.0, 40.0, 30.0)
    assert clamp_box((-5, 10, 50, 20), 40, 30) == (0.0, 10.0, 40.0, 20.0)
    with pytest.raises(ValueError, match=r"img: face box .* lies outside the 40x30 image"):
        clamp_box((45, 0, 60, 10), 40, 30, "img")
    with pytest.raises(ValueError, match="is empty"):
        clamp_box((10, 10, 5, 20), 40, 30)
    with pytest.raises(ValueError, match="4 finite numbers"):
        clamp_box((0, 0, float("nan"), 5), 40, 30)


# ---------------------------------------------------------------------------------------------- processor
def test_normalisation_and_shape() -> None:
    processor = AffectNetPlusImageProcessor(size=16)
    assert processor.size == {"height": 16, "width": 16} and processor.image_size == 16
    assert processor.image_mean == list(IMAGENET_MEAN)
    image = np.full((30, 20, 3), (200, 100, 50), dtype=np.uint8)
    out = processor([image, image[:10]])["pixel_values"]
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32 and out.shape == (2, 3, 16, 16)
    expected = (np.array([200, 100, 50]) / 255 - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
    np.testing.assert_allclose(out[0, :, 5, 7].numpy(), expected, rtol=1e-5)
    as_numpy = processor(image, return_tensors=None)["pixel_values"]
    assert isinstance(as_numpy, np.ndarray) and as_numpy.shape == (1, 3, 16, 16)
    plain = AffectNetPlusImageProcessor(size=4, do_normalize=False)(image)["pixel_values"]
    np.testing.assert_allclose(plain[0, :, 0, 0].numpy(), [200 / 255, 100 / 255, 50 / 255], rtol=1e-6)


def test_face_crop_is_used_and_clamped() -> None:
    image = np.zeros((40, 40, 3), dtype=np.uint8)
    image[:, 20:] = 255  # right half white
    processor = AffectNetPlusImageProcessor(size=8, do_normalize=False)
    right = processor(image, face_boxes=[(20, 0, 40, 40)])["pixel_values"]
    assert torch.all(right == 1.0)
    # a box reaching past the border is clamped: same as the clamped box
    past = processor(image, face_boxes=[(20, -10, 70, 45)])["pixel_values"]
    torch.testing.assert_close(past, right)
    whole = processor(image)["pixel_values"]
    assert whole[0, 0, 0, 0] == 0 and whole[0, 0, 0, -1] == 1
    no_crop = AffectNetPlusImageProcessor(size=8, do_normalize=False, do_crop_face=False)
    torch.testing.assert_close(no_crop(image, face_boxes=[(20, 0, 40, 40)])["pixel_values"], whole)
    record = FaceRecord(image_id="r", image_bytes=_png_bytes(Image.fromarray(image)), face_box=(20, 0, 40, 40))
    torch.testing.assert_close(processor([record])["pixel_values"], right)
    with pytest.raises(BadImageError, match=r"r: face box .* lies outside the 40x40 image"):
        processor.process_one(FaceRecord(image_id="r", image_bytes=record.image_bytes, face_box=(50, 50, 60, 60)))
    with pytest.raises(ValueError, match="got 2 images but 1 face boxes"):
        processor([image, image], face_boxes=[None])


def test_resize_is_bilinear_and_deterministic(tmp_path: Path) -> None:
    array = _gradient(37, 53)
    processor = AffectNetPlusImageProcessor(size=24, do_normalize=False)
    out = processor(array)["pixel_values"][0].numpy()
    expected = np.asarray(Image.fromarray(array).resize((24, 24), Image.Resampling.BILINEAR), dtype=np.float32) / 255
    np.testing.assert_allclose(out, expected.transpose(2, 0, 1), atol=1e-6)
    torch.testing.assert_close(processor(array)["pixel_values"], processor(array)["pixel_values"], rtol=0, atol=0)


def test_jpeg_draft_mode(tmp_path: Path) -> None:
    path = _jpeg_file(tmp_path / "big.jpg", _gradient(400, 480))
    fast = AffectNetPlusImageProcessor(size=32)
    exact = AffectNetPlusImageProcessor(size=32, jpeg_draft=False)
    box = (40, 40, 360, 360)
    a, b = fast.process_one(path, box), exact.process_one(path, box)
    np.testing.assert_array_equal(a, fast.process_one(path, box))  # deterministic
    assert 0 < np.abs(a - b).mean() < 0.05  # draft decoding differs only slightly
    # no draft when the face is not downscaled by 2: identical to the full decode
    # a caller's own (lazy) PIL image is never switched to draft mode
    opened = Image.open(path)
    np.testing.assert_array_equal(fast.process_one(opened, box), b)
    assert opened.size == (480, 400)
    small_box = (0, 0, 50, 50)
    np.testing.assert_array_equal(fast.process_one(path, small_box), exact.process_one(path, small_box))


def test_save_and_load_pretrained(tmp_path: Path) -> None:
    processor = AffectNetPlusImageProcessor(
        size=48, image_mean=[0.5, 0.5, 0.5], image_std=[0.25, 0.25, 0.25], jpeg_draft=False
    )
    processor.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "preprocessor_config.json").read_text())
    assert config["image_processor_type"] == "AffectNetPlusImageProcessor"
    assert (
        config["size"] == {"height": 48, "width": 48}
        and config["image_std"] == [0.25, 0.25, 0.25]
        and config["jpeg_draft"] is False
    )
    loaded = AffectNetPlusImageProcessor.from_pretrained(tmp_path)
    assert loaded.to_dict() == processor.to_dict()
    image = _gradient(20, 30)
    torch.testing.assert_close(loaded(image)["pixel_values"], processor(image)["pixel_values"])
    with pytest.raises(ValueError, match="size must be a positive integer"):
        AffectNetPlusImageProcessor(size=0)
    assert AffectNetPlusImageProcessor(size={"height": 20, "width": 20}).image_size == 20


def test_processor_saved_with_an_int_size_still_loads(tmp_path: Path) -> None:
    """``preprocessor_config.json`` written before the size dict (``"size": 48``, no ``do_resize``/``do_rescale``)."""
    old = {
        "do_crop_face": True,
        "do_normalize": True,
        "image_mean": [0.5, 0.5, 0.5],
        "image_std": [0.25, 0.25, 0.25],
        "image_processor_type": "AffectNetPlusImageProcessor",
        "jpeg_draft": False,
        "resample": 2,
        "size": 48,
    }
    (tmp_path / "preprocessor_config.json").write_text(json.dumps(old))
    loaded = AffectNetPlusImageProcessor.from_pretrained(tmp_path)
    assert loaded.size == {"height": 48, "width": 48} and loaded.image_size == 48
    assert loaded.do_resize and loaded.do_rescale and loaded.rescale_factor == 1 / 255
    image = _gradient(20, 30)
    expected = AffectNetPlusImageProcessor(
        size={"height": 48, "width": 48}, image_mean=[0.5] * 3, image_std=[0.25] * 3, jpeg_draft=False
    )(image)["pixel_values"]
    assert torch.equal(loaded(image)["pixel_values"], expected)
    loaded.save_pretrained(tmp_path / "again")  # saved again: the transformers form
    assert json.loads((tmp_path / "again" / "preprocessor_config.json").read_text())["size"] == {
        "height": 48,
        "width": 48,
    }


def test_resize_and_rescale_flags() -> None:
    image = _gradient(12, 10)
    unscaled = AffectNetPlusImageProcessor(size=6, do_rescale=False, do_normalize=False)(image)["pixel_values"]
    scaled = AffectNetPlusImageProcessor(size=6, do_normalize=False)(image)["pixel_values"]
    assert torch.equal(scaled, unscaled / 255) and unscaled.max() > 1
    kept = AffectNetPlusImageProcessor(size=6, do_resize=False, do_normalize=False)(image)["pixel_values"]
    assert kept.shape == (1, 3, 12, 10)
    np.testing.assert_array_equal(kept[0].permute(1, 2, 0).numpy(), image.astype(np.float32) / 255)
    wide = AffectNetPlusImageProcessor(size={"height": 4, "width": 7})
    assert wide(image)["pixel_values"].shape == (1, 3, 4, 7)
    with pytest.raises(ValueError, match="4x7 images, not squares"):
        wide.image_size
    with pytest.raises(ValueError, match="size must be"):
        AffectNetPlusImageProcessor(size={"height": 4})
    with pytest.raises(ValueError, match="at most 4096"):
        AffectNetPlusImageProcessor(size={"height": 4, "width": 5000})


# ---------------------------------------------------------------------------------------------- dataloader
@pytest.fixture()
def records(tmp_path: Path) -> list[FaceRecord]:
    out = []
    for i in range(7):
        path = tmp_path / f"{i}.png"
        Image.fromarray(np.full((10, 10, 3), i * 30, dtype=np.uint8)).save(path)
        out.append(FaceRecord(image_id=f"{i}.png", image_path=str(path)))
    (tmp_path / "3.png").write_bytes(b"broken")
    out.append(FaceRecord(image_id="missing.png", image_path=str(tmp_path / "missing.png")))
    return out


def test_dataloader_raises_on_bad_image(records: list[FaceRecord]) -> None:
    processor = AffectNetPlusImageProcessor(size=4, do_normalize=False)
    with pytest.raises(BadImageError, match=r"3.png: not a readable image"):
        list(make_dataloader(records, processor, batch_size=4))


def test_dataloader_skip_bad(records: list[FaceRecord]) -> None:
    processor = AffectNetPlusImageProcessor(size=4, do_normalize=False)
    batches = list(make_dataloader(records, processor, batch_size=3, skip_bad=True))
    assert [b["pixel_values"].shape[0] for b in batches] == [3, 2, 1]
    index = torch.cat([b["index"] for b in batches]).tolist()
    assert index == [0, 1, 2, 4, 5, 6]
    assert batches[0]["index"].dtype == torch.long
    bad = [item for b in batches for item in b["bad"]]
    assert [image_id for image_id, _ in bad] == ["3.png", "missing.png"]
    assert "image file missing" in bad[1][1]
    # each image's pixels belong to its record
    for batch in batches:
        for pixels, i in zip(batch["pixel_values"], batch["index"].tolist()):
            assert pixels[0, 0, 0].item() == pytest.approx(i * 30 / 255)
    # a batch made only of bad images is empty, not an error
    only_bad = next(iter(make_dataloader(records[7:], processor, batch_size=2, skip_bad=True)))
    assert only_bad["pixel_values"].shape == (0, 3, 4, 4) and len(only_bad["bad"]) == 1


def test_dataloader_shuffle_is_seeded(records: list[FaceRecord]) -> None:
    good = [r for r in records if r.image_id not in ("3.png", "missing.png")]
    processor = AffectNetPlusImageProcessor(size=4)

    def order(seed: int, workers: int = 0) -> list[int]:
        loader = make_dataloader(good, processor, batch_size=2, shuffle=True, seed=seed, num_workers=workers)
        return torch.cat([b["index"] for b in loader]).tolist()

    assert order(5) == order(5) and sorted(order(5)) == list(range(6))
    assert any(order(5) != order(s) for s in (6, 7, 8))
    assert order(5, workers=2) == order(5)
    dataset = FaceImageDataset(iter(good), processor)
    assert len(dataset) == 6 and dataset[2]["index"] == 2 and dataset[2]["bad"] is None
    drop = make_dataloader(good, processor, batch_size=4, drop_last=True)
    assert [b["pixel_values"].shape[0] for b in drop] == [4]


def test_open_record_image_is_the_one_record_loader(tmp_path: Path) -> None:
    from affectnetplus_hf.images import MissingImageError, image_identity, open_record_image, read_record_bytes

    data = _png_bytes(Image.fromarray(np.full((6, 9), 200, dtype=np.uint8), mode="L"))
    from_bytes = FaceRecord("a.png", image_bytes=data, face_box=(0, 0, 2, 2))
    image = open_record_image(from_bytes)
    assert image.mode == "RGB" and image.size == (9, 6)  # whole image, no face crop
    with open_record_image(from_bytes, decode=False) as header:
        assert header.size == (9, 6) and header.mode == "L"
    (tmp_path / "a.png").write_bytes(data)
    from_file = FaceRecord("a.png", image_path=str(tmp_path / "a.png"))
    assert read_record_bytes(from_file) == read_record_bytes(from_bytes) == data
    assert image_identity(data)[0] == len(data)
    gone = FaceRecord("gone.png", image_path=str(tmp_path / "gone.png"))
    for loader in (open_record_image, read_record_bytes):
        with pytest.raises(MissingImageError, match=r"gone.png: image file missing") as error:
            loader(gone)
        assert isinstance(error.value, BadImageError) and isinstance(error.value, FileNotFoundError)
    with pytest.raises(BadImageError, match="empty: record has neither image_path nor image_bytes"):
        open_record_image(FaceRecord("empty"))
