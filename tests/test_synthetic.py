"""The embedded synthetic sample (affectnetplus_hf.synthetic): contract, ground truth, determinism, learnability."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from affectnetplus_hf import synthetic as S
from affectnetplus_hf.emotions import ACTION_UNITS, EMOTION_TO_INDEX, EMOTIONS
from affectnetplus_hf.run_folder import MARKER_FILE, FolderLock, Marker, RunFolderError
from affectnetplus_hf.sources.synthetic import read_ground_truth

NEUTRAL = EMOTION_TO_INDEX["Neutral"]

SIZE = 64


def _tree_digest(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        return list(reader.fieldnames or []), list(reader)


@pytest.fixture(scope="module")
def csv_sample(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("syn") / "csv"
    S.write_sample(
        d, layout="csv", n_train=24, n_val=8, n_mas=40, n_annotators=5, seed=3, image_size=SIZE, progress=False
    )
    return d


@pytest.fixture(scope="module")
def npy_sample(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("syn") / "npy"
    S.write_sample(
        d,
        layout="npy",
        n_train=20,
        n_val=6,
        n_mas=10,
        n_annotators=3,
        seed=3,
        image_size=SIZE,
        progress=False,
        contact_sheet=False,
    )
    return d


def test_sample_info_and_csv_layout(csv_sample: Path) -> None:
    info = json.loads((csv_sample / "sample_info.json").read_text())
    assert info["kind"] == "affectnetplus-synthetic-sample" and info["version"] == S.SAMPLE_VERSION == 3
    assert {k: info[k] for k in ("layout", "seed", "image_size", "n_train", "n_val", "n_mas", "n_annotators")} == {
        "layout": "csv",
        "seed": 3,
        "image_size": SIZE,
        "n_train": 24,
        "n_val": 8,
        "n_mas": 40,
        "n_annotators": 5,
    }
    for name, n in (("training.csv", 24), ("validation.csv", 8)):
        columns, rows = _rows(csv_sample / "Manually_Annotated_file_lists" / name)
        assert columns == [
            "subDirectory_filePath",
            "face_x",
            "face_y",
            "face_width",
            "face_height",
            "facial_landmarks",
            "expression",
            "valence",
            "arousal",
        ]
        assert len(rows) == n
        for row in rows:
            image = csv_sample / "Manually_Annotated_Images" / row["subDirectory_filePath"]
            assert image.is_file() and image.suffix == ".jpg"
            with Image.open(image) as img:
                assert img.format == "JPEG" and img.size == (SIZE, SIZE)
            assert 0 <= int(row["expression"]) <= 7
            assert len(row["facial_landmarks"].split(";")) == 136
            x, y, w, h = (int(row[k]) for k in ("face_x", "face_y", "face_width", "face_height"))
            assert x >= 0 and y >= 0 and w > SIZE // 4 and h > SIZE // 4 and x + w <= SIZE and y + h <= SIZE
            for key in ("valence", "arousal"):
                value = float(row[key])
                assert value == -2 or -1 <= value <= 1
    assert (csv_sample / "sample_grid.png").is_file()


def test_label_noise_matches_the_written_labels(csv_sample: Path) -> None:
    """``sample_info.json``'s label_noise is what the annotations and hard labels on disk give."""
    noise = json.loads((csv_sample / "sample_info.json").read_text())["label_noise"]
    _, annotations = _rows(csv_sample / "multi_annotated" / "annotations.csv")
    per_image: dict[str, list[str]] = {}
    for row in annotations:
        per_image.setdefault(row["image"], []).append(row["label"])
    pairs = [a == b for labels in per_image.values() for i, a in enumerate(labels) for b in labels[i + 1 :]]
    assert len(pairs) == 40 * 10 and noise["pairwise_agreement"] == pytest.approx(np.mean(pairs), abs=1e-4)
    truth = read_ground_truth(csv_sample)
    matches = []
    for name in ("training.csv", "validation.csv"):
        for row in _rows(csv_sample / "Manually_Annotated_file_lists" / name)[1]:
            soft = truth[f"Manually_Annotated_Images/{row['subDirectory_filePath']}"]["soft_label_true"]
            matches.append(int(row["expression"]) == int(np.argmax(soft)))
    assert len(matches) == 32 and noise["hard_label_matches_truth"] == pytest.approx(np.mean(matches), abs=1e-4)
    assert 0.3 < noise["pairwise_agreement"] < 0.9 and 0.5 < noise["hard_label_matches_truth"] <= 1.0


def test_multi_annotated_part(csv_sample: Path) -> None:
    columns, votes = _rows(csv_sample / "multi_annotated" / "votes.csv")
    assert columns == ["image", "split", *EMOTIONS]
    assert len(votes) == 40
    a_columns, annotations = _rows(csv_sample / "multi_annotated" / "annotations.csv")
    assert a_columns == ["image", "annotator", "label"]
    per_image: dict[str, list[str]] = {}
    for row in annotations:
        per_image.setdefault(row["image"], []).append(row["label"])
    for row in votes:
        counts = np.array([int(row[e]) for e in EMOTIONS])
        assert counts.sum() == 5, "every MAS image has n_annotators votes"
        assert (csv_sample / "multi_annotated" / row["image"]).is_file()
        labels = per_image[row["image"]]
        assert np.array_equal(np.bincount([EMOTION_TO_INDEX[label] for label in labels], minlength=8), counts)
    # 5 distinct annotators per image
    names: dict[str, set[str]] = {}
    for row in annotations:
        names.setdefault(row["image"], set()).add(row["annotator"])
    assert all(len(v) == 5 for v in names.values())


def test_weak_face_ground_truth_is_its_blend_with_neutral() -> None:
    """A pure face at intensity 0.8 has exactly the AUs of the 80/20 blend with Neutral drawn at full
    intensity; both get the same ground truth (0.8 on the emotion, 0.2 on Neutral)."""
    happy, sad = EMOTION_TO_INDEX["Happy"], EMOTION_TO_INDEX["Sad"]
    weak = S.blend_aus(happy, None, 0.0, 0.8, rng=np.random.default_rng(5))
    blended = S.blend_aus(happy, NEUTRAL, 0.2, 1.0, rng=np.random.default_rng(5))
    np.testing.assert_allclose(weak, blended, atol=1e-12)
    np.testing.assert_allclose(S.soft_label_of(happy, None, 0.0, 0.8), S.soft_label_of(happy, NEUTRAL, 0.2))
    assert S.soft_label_of(happy, None, 0.0, 0.8)[[happy, NEUTRAL]].tolist() == [0.8, 0.2]
    # At or above full intensity nothing moves to Neutral; a blend keeps its proportions.
    assert S.soft_label_of(happy, None, 0.0, 1.07)[happy] == 1.0
    label = S.soft_label_of(happy, sad, 0.3, 0.9)
    assert label[[happy, sad, NEUTRAL]] == pytest.approx([0.63, 0.27, 0.1]) and label.sum() == pytest.approx(1.0)
    # Neutral itself has no AUs: its intensity changes nothing.
    assert S.soft_label_of(NEUTRAL, None, 0.0, 0.7)[NEUTRAL] == 1.0


def test_ground_truth_consistent(csv_sample: Path) -> None:
    truth = read_ground_truth(csv_sample)
    assert len(truth) == 24 + 8 + 40
    blends = 0
    for image_id, record in truth.items():
        assert (csv_sample / image_id).is_file()
        soft = record["soft_label_true"]
        assert soft.sum() == pytest.approx(1.0, abs=1e-6)
        primary, secondary = EMOTION_TO_INDEX[record["primary"]], record["secondary"]
        secondary = None if secondary is None else EMOTION_TO_INDEX[secondary]
        intensity, weight = record["intensity"], record["blend_weight"]
        assert 0.7 <= intensity <= 1.1
        share = min(1.0, intensity)  # the expression's share; a weak face's rest is Neutral
        np.testing.assert_allclose(soft, S.soft_label_of(primary, secondary, weight, intensity), atol=1e-6)
        if secondary is None:
            assert weight == 0
            if record["primary"] != "Neutral":
                assert soft[primary] == pytest.approx(share, abs=1e-4)
                assert soft[NEUTRAL] == pytest.approx(1.0 - share, abs=1e-4)
                assert np.count_nonzero(soft) == (1 if intensity >= 1.0 else 2)
            else:
                assert soft[NEUTRAL] == 1.0
        else:
            blends += 1
            assert 0.2 <= weight <= 0.45
            assert soft[secondary] >= share * weight - 1e-4 and soft[primary] >= share * (1 - weight) - 1e-4
            assert np.count_nonzero(np.delete(soft, NEUTRAL)) == 2 - (NEUTRAL in (primary, secondary))
        lm = record["landmarks"]
        assert lm.shape == (68, 2) and (lm >= 0).all() and (lm <= SIZE).all()
        yaw, pitch, roll = record["head_pose"]
        assert abs(yaw) <= 18 and abs(pitch) <= 12 and abs(roll) <= 8
    assert blends > 0
    # AffectNet CSV landmarks agree with ground_truth.csv.
    _, rows = _rows(csv_sample / "Manually_Annotated_file_lists" / "training.csv")
    for row in rows:
        record = truth[f"Manually_Annotated_Images/{row['subDirectory_filePath']}"]
        lm = np.array([float(v) for v in row["facial_landmarks"].split(";")]).reshape(68, 2)
        np.testing.assert_allclose(lm, record["landmarks"], atol=0.006)
        x, y, w, h = (int(row[k]) for k in ("face_x", "face_y", "face_width", "face_height"))
        inside = (lm[:, 0] >= x - 1) & (lm[:, 0] <= x + w + 1) & (lm[:, 1] >= y - 1) & (lm[:, 1] <= y + h + 1)
        assert inside.all(), "the face box contains the landmarks"


def test_npy_layout(npy_sample: Path) -> None:
    truth = read_ground_truth(npy_sample)
    for folder, n in (("train_set", 20), ("val_set", 6)):
        images = sorted((npy_sample / folder / "images").glob("*.jpg"), key=lambda p: int(p.stem))
        assert len(images) == n
        numbers = [int(p.stem) for p in images]
        assert numbers != list(range(n)), "numbers are not contiguous, like AffectNet's"
        for p in images:
            ann = npy_sample / folder / "annotations"
            exp = np.load(ann / f"{p.stem}_exp.npy", allow_pickle=False)
            assert exp.shape == () and exp.dtype.kind == "U" and 0 <= int(str(exp)) <= 7
            for key in ("val", "aro"):
                value = np.load(ann / f"{p.stem}_{key}.npy", allow_pickle=False)
                assert value.dtype.kind == "U" and (float(value) == -2 or -1 <= float(value) <= 1)
            lnd = np.load(ann / f"{p.stem}_lnd.npy", allow_pickle=False)
            assert lnd.shape == (136,) and lnd.dtype == np.float64
            np.testing.assert_allclose(lnd.reshape(68, 2), truth[f"{folder}/images/{p.name}"]["landmarks"], atol=0.006)
    _, votes = _rows(npy_sample / "multi_annotated" / "votes.csv")
    assert all(sum(int(r[e]) for e in EMOTIONS) == 3 for r in votes)


def test_deterministic_and_seed_dependent(tmp_path: Path) -> None:
    kwargs = dict(layout="npy", n_train=6, n_val=2, n_mas=6, n_annotators=3, image_size=48, progress=False)
    S.write_sample(tmp_path / "a", seed=11, **kwargs)
    S.write_sample(tmp_path / "b", seed=11, **kwargs)
    S.write_sample(tmp_path / "c", seed=12, **kwargs)
    a, b, c = (_tree_digest(tmp_path / k) for k in "abc")
    assert a == b
    assert a != c
    assert (tmp_path / "a" / "sample_grid.png").is_file()


def test_render_face_returns_projected_ground_truth() -> None:
    rng = np.random.default_rng(0)
    aus = S.blend_aus(EMOTION_TO_INDEX["Surprise"], None, 0.0, 1.0)
    params = S.draw_face_params(rng, aus)
    params.yaw = params.pitch = params.roll = 0.0
    image, lm, box = S.render_face(params, 96, np.random.default_rng(1))
    assert image.size == (96, 96) and lm.shape == (68, 2) and lm.dtype == np.float32
    # iBUG order on a frontal face: jaw left to right, brows above eyes above nose tip above mouth above chin.
    assert lm[0, 0] < lm[8, 0] < lm[16, 0]
    assert lm[17:27, 1].mean() < lm[36:48, 1].mean() < lm[30, 1] < lm[48:68, 1].mean() < lm[8, 1]
    assert lm[36:42, 0].mean() < lm[42:48, 0].mean()
    # Yaw to the image right moves the nose tip right of the face-outline centre.
    params.yaw = 25.0
    _, lm_yaw, _ = S.render_face(params, 96, np.random.default_rng(1))
    assert lm_yaw[30, 0] - (lm_yaw[0, 0] + lm_yaw[16, 0]) / 2 > lm[30, 0] - (lm[0, 0] + lm[16, 0]) / 2 + 2
    # Jaw drop (Surprise) opens the mouth: inner lips apart, unlike Neutral.
    params.yaw = 0.0
    neutral = S.FaceParams(**{**params.__dict__, "aus": S.blend_aus(0, None, 0.0)})
    _, lm_neutral, _ = S.render_face(neutral, 96, np.random.default_rng(1))
    assert lm[66, 1] - lm[62, 1] > 4 and abs(lm_neutral[66, 1] - lm_neutral[62, 1]) < 1


def test_face_framing_matches_a_crop_of_the_face_box() -> None:
    """``framing="face"`` (the multi-annotated part) draws what cropping the scene's face box and
    resizing it to the image would show: same face, landmarks mapped by the box's per-axis scale."""
    rng = np.random.default_rng(4)
    params = S.draw_face_params(rng, S.blend_aus(EMOTION_TO_INDEX["Happy"], None, 0.0, 1.0))
    scene, lm_scene, (x, y, w, h) = S.render_face(params, 96, np.random.default_rng(1))
    face, lm_face, box = S.render_face(params, 96, np.random.default_rng(1), framing="face")
    assert box == (0, 0, 96, 96) and w < 90 and h < 90
    expected = (lm_scene - [x, y]) * [96 / w, 96 / h]
    assert np.abs(lm_face - expected).max() < 96 / min(w, h) + 0.5  # the box is rounded to whole pixels
    crop = np.asarray(scene.crop((x, y, x + w, y + h)).resize((96, 96), Image.Resampling.BILINEAR), np.float32)
    drawn = np.asarray(face, np.float32)
    assert np.abs(crop - drawn).mean() < 20, np.abs(crop - drawn).mean()
    assert np.abs(np.asarray(scene, np.float32) - drawn).mean() > 20
    with pytest.raises(ValueError, match="framing"):
        S.render_face(params, 96, framing="tight")


def test_multi_annotated_part_holds_face_crops(csv_sample: Path) -> None:
    truth = read_ground_truth(csv_sample)
    spans: dict[str, list[float]] = {"multi_annotated": [], "affectnet": []}
    for record in truth.values():
        spans[record["part"]].append(float(np.ptp(record["landmarks"][:, 0])))  # jaw side to side
    assert min(spans["multi_annotated"]) > 0.8 * SIZE > max(spans["affectnet"]), spans


def test_blend_aus_and_contempt_side() -> None:
    happy, surprise = EMOTION_TO_INDEX["Happy"], EMOTION_TO_INDEX["Surprise"]
    au = S.blend_aus(happy, surprise, 0.3)
    matrix = S.emotion_au_matrix()
    np.testing.assert_allclose(au[0], 0.7 * matrix[happy] + 0.3 * matrix[surprise])
    contempt = S.blend_aus(EMOTION_TO_INDEX["Contempt"], None, 0.0, contempt_side="left")
    col = list(ACTION_UNITS).index(12)
    assert contempt[1, col] > 0 and contempt[0, col] == 0


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="layout"):
        S.write_sample(tmp_path / "x", layout="parquet")
    with pytest.raises(ValueError, match="n_annotators"):
        S.write_sample(tmp_path / "x", n_mas=5, n_annotators=1)
    with pytest.raises(ValueError, match="n_train"):
        S.write_sample(tmp_path / "x", n_train=-1)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    for overwrite in (False, True):  # a folder the sample writer did not write is never replaced
        with pytest.raises(RunFolderError, match=r"is not empty and was not written by `affectnetplus sample`"):
            S.write_sample(tmp_path / "full", n_train=2, n_val=0, n_mas=0, progress=False, overwrite=overwrite)
    assert sorted(p.name for p in (tmp_path / "full").iterdir()) == ["keep.txt"]
    assert (tmp_path / "full" / "keep.txt").read_text() == "mine"
    (tmp_path / "file").write_text("x")
    with pytest.raises(RunFolderError, match="is a file"):
        S.write_sample(tmp_path / "file", n_train=2, n_val=0, n_mas=0, progress=False)
    with pytest.raises(FileNotFoundError):
        read_ground_truth(tmp_path / "nowhere")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "ground_truth.csv").write_text("image_id,part\nx,affectnet\n")
    with pytest.raises(ValueError, match="missing columns"):
        read_ground_truth(bad)


def test_overwrite_replaces_a_sample(tmp_path: Path) -> None:
    d = tmp_path / "s"
    kwargs = dict(n_train=3, n_val=1, n_mas=0, image_size=48, progress=False, contact_sheet=False)
    S.write_sample(d, **kwargs)
    marker = Marker.read(d)
    assert (marker.kind, marker.complete, marker.version) == ("sample", True, S.SAMPLE_VERSION)
    assert marker.identity["layout"] == "csv" and marker.identity["seed"] == 0
    with pytest.raises(RunFolderError, match=r"already holds a finished run.*--overwrite \(overwrite=True\)"):
        S.write_sample(d, **kwargs)
    with pytest.raises(RunFolderError, match=r"other settings \(layout: was 'csv', now 'npy'.*--overwrite"):
        S.write_sample(d, layout="npy", **{**kwargs, "n_train": 2})
    S.write_sample(d, layout="npy", **{**kwargs, "n_train": 2}, overwrite=True)
    assert not (d / "Manually_Annotated_file_lists").exists()
    assert json.loads((d / "sample_info.json").read_text())["layout"] == "npy"
    assert Marker.read(d).identity["layout"] == "npy"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".s.")] == [".s.lock"]  # no staging left


def test_second_writer_on_a_locked_folder_refuses(tmp_path: Path) -> None:
    d = tmp_path / "s"
    with FolderLock(d):  # another run holds the folder
        with pytest.raises(RunFolderError, match=r"s is in use by process \d+ \(started "):
            S.write_sample(d, n_train=2, n_val=0, n_mas=0, image_size=40, progress=False, contact_sheet=False)
    assert not d.exists()
    S.write_sample(d, n_train=2, n_val=0, n_mas=0, image_size=40, progress=False, contact_sheet=False)
    assert Marker.read(d).complete


def test_an_empty_folder_is_written_and_the_marker_does_not_hide_the_sample(tmp_path: Path) -> None:
    from affectnetplus_hf.sources import detect_source, open_multi_annotated, open_source

    d = tmp_path / "given"
    d.mkdir()
    S.write_sample(d, n_train=3, n_val=1, n_mas=4, n_annotators=3, image_size=40, progress=False, contact_sheet=False)
    assert (d / MARKER_FILE).is_file() and detect_source(d) == ("synthetic", "csv")
    assert len(list(open_source(d).records("train"))) == 3
    assert len(list(open_multi_annotated(d).records("train"))) == 4


def _aligned_gray(path: Path, landmarks: np.ndarray, side: int = 24) -> np.ndarray:
    """Grey face crop aligned on the ground-truth eye and mouth centres (a similarity transform)."""
    src = np.stack([landmarks[36:42].mean(0), landmarks[42:48].mean(0), landmarks[48:68].mean(0)])
    dst = np.array([[0.3, 0.35], [0.7, 0.35], [0.5, 0.78]]) * side
    # Least-squares similarity dst -> src (PIL wants the output-to-input map): x' = a x - b y + c, y' = b x + a y + d.
    rows, rhs = [], []
    for (u, v), (x, y) in zip(dst, src):
        rows += [[u, -v, 1, 0], [v, u, 0, 1]]
        rhs += [x, y]
    a, b, c, d = np.linalg.lstsq(np.array(rows), np.array(rhs), rcond=None)[0]
    with Image.open(path) as img:
        out = img.convert("L").transform(
            (side, side), Image.Transform.AFFINE, (a, -b, c, b, a, d), resample=Image.Resampling.BILINEAR
        )
    return np.asarray(out, dtype=np.float32) / 255.0


def test_learnable_but_not_trivial(tmp_path: Path) -> None:
    """Logistic regression on aligned 24x24 grey faces beats chance (1/8) by far, yet is not perfect."""
    torch = pytest.importorskip("torch")
    d = tmp_path / "learn"
    S.write_sample(
        d, n_train=0, n_val=0, n_mas=640, n_annotators=3, image_size=64, seed=5, progress=False, contact_sheet=False
    )
    truth = read_ground_truth(d)
    ids = sorted(truth)
    x = np.stack([_aligned_gray(d / i, truth[i]["landmarks"]) for i in ids])
    y = np.array([EMOTION_TO_INDEX[truth[i]["primary"]] for i in ids])
    x = torch.tensor(x.reshape(len(x), -1))
    y = torch.tensor(y)
    train, test = slice(0, 480), slice(480, None)
    x = (x - x[train].mean(0)) / (x[train].std(0) + 1e-2)
    torch.manual_seed(0)
    model = torch.nn.Linear(x.shape[1], 8)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2, weight_decay=1e-2)
    for _ in range(150):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(x[train]), y[train]).backward()
        optimizer.step()
    accuracy = (model(x[test]).argmax(1) == y[test]).float().mean().item()
    assert 0.45 < accuracy < 0.97, accuracy


def test_workers_give_the_same_bytes(tmp_path: Path) -> None:
    kwargs = dict(
        layout="csv",
        n_train=10,
        n_val=2,
        n_mas=8,
        n_annotators=3,
        image_size=40,
        seed=2,
        progress=False,
        contact_sheet=False,
    )
    S.write_sample(tmp_path / "one", workers=1, **kwargs)
    S.write_sample(tmp_path / "two", workers=2, **kwargs)
    assert _tree_digest(tmp_path / "one") == _tree_digest(tmp_path / "two")


def test_cli_sample_command(tmp_path: Path, capsys) -> None:
    import argparse

    from affectnetplus_hf.commands import sample

    parser = argparse.ArgumentParser()
    sample.register(parser.add_subparsers())
    out = tmp_path / "cli"
    args = parser.parse_args(
        [
            "sample",
            str(out),
            "--layout",
            "npy",
            "--n-train",
            "5",
            "--n-val",
            "2",
            "--n-mas",
            "6",
            "--n-annotators",
            "4",
            "--seed",
            "9",
            "--image-size",
            "48",
        ]
    )
    assert args.func(args) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["layout"] == "npy" and info["n_annotators"] == 4 and info["seed"] == 9
    assert len(list((out / "train_set" / "images").glob("*.jpg"))) == 5
    assert (out / "sample_grid.png").is_file()
    args = parser.parse_args(["sample", str(out), "--n-train", "3"])
    with pytest.raises(RunFolderError, match="pass --overwrite"):
        args.func(args)
    args = parser.parse_args(["sample", str(out), "--n-train", "3", "--n-val", "0", "--n-mas", "0", "--overwrite"])
    assert args.func(args) == 0 and json.loads(capsys.readouterr().out)["n_train"] == 3


def test_make_face_with_given_pose() -> None:
    rng = np.random.default_rng(4)
    image, lm, box, params = S.make_face(rng, "Happy", pose=(10.0, -5.0, 3.0), image_size=80)
    assert (params.yaw, params.pitch, params.roll) == (10.0, -5.0, 3.0)
    assert image.size == (80, 80) and lm.shape == (68, 2)
    x, y, w, h = box
    assert x <= lm[:, 0].min() and lm[:, 0].max() <= x + w + 1 and y <= lm[:, 1].min() and lm[:, 1].max() <= y + h + 1
    with pytest.raises(ValueError, match="unknown emotion"):
        S.make_face(rng, "Joy")
