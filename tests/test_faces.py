"""The face stage: detectors, EXIF orientation, eye levelling and framing, and the photo path of
``predict`` and ``ds.map`` (one row per face, left to right; ``no_face`` rows)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from PIL import Image

from affectnetplus_hf.cli import main
from affectnetplus_hf.emotions import EMOTIONS

cv2 = pytest.importorskip("cv2")


@pytest.fixture(scope="module")
def assets(tmp_path_factory, make_tiny_labeler, face_photos):
    root = tmp_path_factory.mktemp("faces")
    model = make_tiny_labeler(root / "model")
    left = face_photos.faces[0]
    paths = {}
    left.save(paths.setdefault("upright", root / "upright.png"))
    face_photos.pair.save(paths.setdefault("pair", root / "pair.png"))
    for orientation, turn in ((6, Image.Transpose.ROTATE_90), (8, Image.Transpose.ROTATE_270)):
        exif = Image.Exif()
        exif[0x0112] = orientation  # stored sideways, displayed upright
        left.transpose(turn).save(paths.setdefault(f"exif{orientation}", root / f"exif{orientation}.png"), exif=exif)
    gradient = np.tile(np.linspace(40, 220, 320, dtype=np.uint8), (240, 1))
    Image.fromarray(gradient).save(paths.setdefault("empty", root / "empty.png"))
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (240, 320, 3), dtype=np.uint8)).save(
        paths.setdefault("noise", root / "noise.png")
    )
    Image.new("RGB", (1, 1), (200, 150, 120)).save(paths.setdefault("dot", root / "dot.png"))
    Image.new("RGB", (20000, 50), (200, 150, 120)).save(paths.setdefault("strip", root / "strip.png"))
    return {"root": root, "model": model, **{k: str(v) for k, v in paths.items()}}


def _predict(assets, *images, extra=()) -> list[dict]:
    output = assets["root"] / "out.jsonl"
    assert main(["predict", str(assets["model"]), *images, "--output", str(output), *extra]) == 0
    return [json.loads(line) for line in output.read_text().splitlines()]


def _values(row) -> np.ndarray:
    return np.array([row[e] for e in EMOTIONS], dtype=np.float64)


# ---------------------------------------------------------------------------------------------- the registry


def test_registry_auto_and_errors():
    from affectnetplus_hf.faces import DETECTORS, available_detectors, create_detector, resolve_detector_name

    assert {"haar", "dlib", "mediapipe"} <= set(DETECTORS)
    installed = available_detectors()
    assert "haar" in installed and resolve_detector_name("auto") == installed[0]
    with pytest.raises(ValueError, match="unknown face detector 'yolo'"):
        create_detector("yolo")
    detector = create_detector("haar")
    assert detector(np.zeros((64, 64, 3), dtype=np.uint8)) == []


def test_dlib_fallback_threshold_searches_again_only_when_nothing_passes():
    pytest.importorskip("dlib")
    import dlib

    from affectnetplus_hf.faces import create_detector

    class Scanner:  # dlib's detector.run: a face of score -0.3 and one of 0.5 in two images
        def __init__(self, score):
            self.score, self.thresholds = score, []

        def run(self, image, upsample, threshold):
            self.thresholds.append(threshold)
            found = self.score >= threshold
            return ([dlib.rectangle(10, 10, 209, 209)] if found else []), ([self.score] if found else []), [0]

    image = np.zeros((240, 240, 3), dtype=np.uint8)
    for score, fallback, faces, thresholds in (
        (-0.3, None, 0, [0.0, 0.0]),
        (-0.3, -0.5, 1, [0.0, 0.0, -0.5]),
        (0.5, -0.5, 1, [0.0]),
    ):
        detector = create_detector("dlib", landmarks=None, fallback_threshold=fallback)
        detector.detector = Scanner(score)
        assert len(detector(image)) == faces and detector.detector.thresholds == thresholds


def test_import_stays_light():
    import subprocess
    import sys

    code = (
        "import sys, affectnetplus_hf, affectnetplus_hf.faces; "
        "print(sorted({'cv2', 'dlib', 'torch'} & set(sys.modules)))"
    )
    assert (
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "[]"
    )


# ---------------------------------------------------------------------------------------------- geometry


def test_aligned_crop_levels_the_eyes_and_frames_the_box():
    from affectnetplus_hf.faces.align import aligned_crop
    from affectnetplus_hf.faces.types import DetectedFace, FaceFraming

    image = np.full((200, 200, 3), 60, dtype=np.uint8)
    eyes = ((80.0, 90.0), (120.0, 110.0))  # tilted by atan(20/40) = 26.6 degrees
    for x, y in eyes:
        cv2.circle(image, (int(x), int(y)), 4, (255, 255, 255), -1)
    face = DetectedFace(box=(60.0, 60.0, 140.0, 140.0), score=1.0, eyes=eyes, landmarks=None)
    crop, angle = aligned_crop(Image.fromarray(image), face, FaceFraming(scale=1.5))
    assert angle == pytest.approx(np.degrees(np.arctan2(20, 40)))
    assert crop.size == (120, 120)
    bright = np.argwhere(np.asarray(crop)[:, :, 0] > 200)
    left, right = bright[bright[:, 1] < 60], bright[bright[:, 1] >= 60]
    assert abs(left[:, 0].mean() - right[:, 0].mean()) < 1.0  # same row: level
    assert abs(right[:, 1].mean() - left[:, 1].mean() - np.hypot(40, 20)) < 1.5  # distance kept
    plain, zero = aligned_crop(Image.fromarray(image), face, FaceFraming(scale=1.0, dy=-0.25), level_eyes=False)
    assert zero == 0.0 and plain.size == (80, 80)
    np.testing.assert_array_equal(np.asarray(plain), image[40:120, 60:140])  # box moved up a quarter width


def test_framing_is_measured_stored_and_defaulted(tmp_path):
    from affectnetplus_hf.faces import DEFAULT_FRAMINGS, FaceFraming, framing_for, measure_framing
    from affectnetplus_hf.faces.types import DetectedFace
    from affectnetplus_hf.image_processing import AffectNetPlusImageProcessor

    def detector(array):  # a box 0.8 of the face, centred 0.1 face-width lower, inside the border
        side = array.shape[0] / 1.5
        x0 = array.shape[1] / 2 - 0.4 * side
        y0 = array.shape[0] / 2 - 0.3 * side
        return [DetectedFace(box=(x0, y0, x0 + 0.8 * side, y0 + 0.8 * side), score=1.0)]

    faces = [Image.new("L", (48, 48), 100) for _ in range(5)]
    framing, counts = measure_framing(detector, faces)
    assert counts == {"faces": 5, "found": 5}
    assert framing.scale == pytest.approx(1.25, abs=0.02) and framing.dx == pytest.approx(0, abs=0.02)
    assert framing.dy == pytest.approx(-0.125, abs=0.02)

    processor = AffectNetPlusImageProcessor(size=32, face_framing={"dlib": framing.to_dict()})
    processor.save_pretrained(tmp_path / "new")
    loaded = AffectNetPlusImageProcessor.from_pretrained(tmp_path / "new")
    assert framing_for(loaded, "dlib") == framing and framing_for(loaded, "haar") == DEFAULT_FRAMINGS["haar"]
    old = json.loads((tmp_path / "new" / "preprocessor_config.json").read_text())
    del old["face_framing"]  # a model saved before the face stage
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "preprocessor_config.json").write_text(json.dumps(old))
    assert (
        framing_for(AffectNetPlusImageProcessor.from_pretrained(tmp_path / "old"), "dlib") == DEFAULT_FRAMINGS["dlib"]
    )
    with pytest.raises(ValueError, match="face_framing\\['dlib'\\]: unknown keys"):
        AffectNetPlusImageProcessor(size=32, face_framing={"dlib": {"zoom": 2}})
    with pytest.raises(ValueError, match="out of range"):
        FaceFraming(scale=40)


def test_exif_orientation_is_applied_only_when_asked(assets):
    from affectnetplus_hf.images import load_image

    upright = np.asarray(load_image(assets["upright"]))
    for key in ("exif6", "exif8"):
        assert np.array_equal(np.asarray(load_image(assets[key], upright=True)), upright)
        assert load_image(assets[key]).size == upright.shape[:2]  # stored grid: sideways


# ---------------------------------------------------------------------------------------------- predict


def test_exif_6_and_8_give_the_upright_soft_label(assets):
    rows = _predict(assets, assets["upright"], assets["exif6"], assets["exif8"])
    assert [row["status"] for row in rows] == ["face"] * 3
    for row in rows[1:]:
        np.testing.assert_array_equal(_values(row), _values(rows[0]))
        assert [row[k] for k in ("x0", "y0", "x1", "y1")] == [rows[0][k] for k in ("x0", "y0", "x1", "y1")]


def test_two_faces_give_two_rows_left_to_right(assets):
    rows = _predict(assets, assets["pair"], extra=("--faces", "all"))
    assert [row["face"] for row in rows] == [0, 1] and [row["path"] for row in rows] == [assets["pair"]] * 2
    assert rows[0]["x1"] <= 220 <= rows[1]["x0"]  # one face in each half
    assert all(row["status"] == "face" and row["score"] is not None for row in rows)
    assert not np.allclose(_values(rows[0]), _values(rows[1]))
    largest = _predict(assets, assets["pair"])
    assert len(largest) == 1 and largest[0]["face"] in (0, 1)
    np.testing.assert_allclose(_values(largest[0]), _values(rows[largest[0]["face"]]), atol=1e-6)


@pytest.mark.parametrize("key", ["empty", "noise", "dot", "strip"])
def test_face_free_images_get_no_face_rows(assets, key):
    (row,) = _predict(assets, assets[key])
    assert row["status"] == "no_face" and row["face"] is None and row["x0"] is None
    assert all(row[e] is None for e in EMOTIONS)


def test_no_face_policies(assets, caplog):
    (row,) = _predict(assets, assets["empty"], extra=("--no-face", "whole"))
    assert row["status"] == "whole_image" and (row["x1"], row["y1"]) == (320, 240)
    assert all(0 <= row[e] <= 1 for e in EMOTIONS)
    assert main(["predict", str(assets["model"]), assets["empty"], "--no-face", "error"]) == 1
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and "empty.png: no face found by the" in errors[0] and "\n" not in errors[0]


def test_csv_keeps_empty_cells_for_no_face(assets):
    output = assets["root"] / "mixed.csv"
    assert main(["predict", str(assets["model"]), assets["upright"], assets["empty"], "--output", str(output)]) == 0
    with open(output, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["status"] for r in rows] == ["face", "no_face"]
    assert rows[1]["Happy"] == "" and float(rows[0]["Happy"]) >= 0


# ---------------------------------------------------------------------------------------------- ds.map


def test_map_detect_faces_equals_predict(assets):
    from datasets import Dataset
    from datasets import Image as ImageFeature

    from affectnetplus_hf.models.hub import load_soft_labeler

    labeler = load_soft_labeler(assets["model"])
    paths = [assets["pair"], assets["exif6"], assets["empty"]]
    ds = Dataset.from_dict({"image": paths}).cast_column("image", ImageFeature())
    fn = labeler.map_function(image_column="image", detect_faces=True, dtype="fp32")
    mapped = ds.map(fn, batched=True, batch_size=2, features=fn.map_features(ds.features))
    rows = _predict(assets, *paths)
    for k, row in enumerate(rows):
        if row["status"] == "no_face":
            assert mapped[k]["face_box"] is None and mapped[k]["soft_label"] is None
            continue
        np.testing.assert_allclose(mapped[k]["soft_label"], _values(row), atol=1e-6)
        np.testing.assert_allclose(mapped[k]["face_box"], [row[c] for c in ("x0", "y0", "x1", "y1")], atol=0.01)
    with pytest.raises(ValueError, match="not both"):
        labeler.map_function(detect_faces=True, face_box_column="box")
