"""Quality bar of ``affectnetplus train softlabeler --preset tiny`` on the embedded sample (issue 4, item 7).

Trains the demo's tiny soft-labeler (8 EBC + 8 AU members and one distribution member, randomly
initialised ``test_resnet`` at 48 px; the calibrated soft label fitted on a held-out tenth of the
multi-annotated part, as ``affectnetplus demo`` does) on the default synthetic sample (seed 0) on CPU and
checks what it learned.

With the calibration hold-out (a tenth of the multi-annotated faces no member sees), measured on 1 CPU
thread: EBC mean 0.942, AU mean 0.918, lowest member 0.827; W-MAE against the ground truth on the 1,000
AffectNet-part images: Eq. 14 soft labels 16.7, the distribution family 12.6, **the calibrated soft label
12.3**, one-hot hard labels 17.0 (blends: Eq. 14 19.8 vs one-hot 26.5; the EBC family alone 14.0).
The numbers below, from before the hold-out (all multi-annotated faces used for training), show the same
picture for the paper's families.

Measured (2026-11-29, sample version 3, 2 CPU cores): training about 190 s wall, writing the sample 12 s:

- test-MAS average accuracy (the balanced-accuracy CS, SPEC §5): EBC mean 0.950, AU mean 0.946, lowest
  member 0.813; every member is above the issue's 0.75;
- soft labels' arg-max on test-MAS: 0.898 (chance 0.125);
- W-MAE (SPEC §9, %) against the ground-truth soft labels on the 1,000 AffectNet-part images, versus the
  one-hot hard labels (one simulated annotator's vote): soft labels 16.3 vs one-hot 17.0 overall; on the
  313 blended faces 20.4 vs 26.5; on the 135 pure faces whose annotator erred 14.0 vs 44.0; on the 552
  pure faces labelled right 14.6 vs 5.0; the EBC family alone (a valid one-family soft label, SPEC §8) 13.1.
  With a second sample (seed 1): 16.7 vs 18.0 overall.

What the sample had to get right for this comparison to mean something (issue 4 item 7, "fix the
sample"): up to version 2 a face drawn at expression intensity 0.8 had the ground truth "100 % Happy"
while the same AUs drawn as an 80/20 blend with Neutral had "80 % Happy, 20 % Neutral". Version 3 gives
both the second label (``synthetic.soft_label_of``), and the annotators vote from it; their pairwise
agreement is now 58 % (AffectNet reports 60.7 % for two annotators), and one annotator's hard label names
the largest ground-truth emotion on 73 % of the faces. Before, soft labels scored 15.9 and one-hot labels
11.8: one-hot labels were exact on 60 % of the faces by construction of the ground truth.

Why the margin is small: the AU family's P_AU (SPEC §7) averages the binary head with APV = softmax(BSV),
which stays near 0.5, so even *perfect* members give every absent emotion about 0.1 and the present one
about 0.9 — a floor of about 8 on faces that one-hot labels get exactly right. The thresholds below sit
just under the measured numbers.
"""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
import torch

from affectnetplus_hf.emotions import EMOTIONS

pytestmark = pytest.mark.slow

EBC_MEAN, AU_MEAN, MEMBER_MIN = 0.93, 0.90, 0.78  # measured 0.942, 0.918, 0.827 (target: 0.75)
ARGMAX_ACCURACY = 0.85  # measured 0.898
SOFT_W_MAE = 17.5  # measured 16.7 (one-hot: 17.0)
CALIBRATED_MARGIN = 3.5  # the calibrated soft label's W-MAE below one-hot's: measured 12.3 vs 17.0


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from affectnetplus_hf.demo import DEMO_SOFTLABELER
    from affectnetplus_hf.sources.synthetic import write_sample
    from affectnetplus_hf.training import TrainConfig
    from affectnetplus_hf.training.softlabeler import train_soft_labeler

    root = tmp_path_factory.mktemp("quality")
    sample = root / "sample"
    write_sample(sample, progress=False, contact_sheet=False)
    started = time.perf_counter()
    run = train_soft_labeler(TrainConfig(data=str(sample), output_dir=str(root / "model"), preset="tiny",
                                         progress=False, log_with="none", **DEMO_SOFTLABELER))
    run.timings["wall_s"] = time.perf_counter() - started
    return sample, run


def _soft_labels(model, records) -> np.ndarray:
    from affectnetplus_hf.training.data import FacePreprocessor, decode_records

    pixels, _, _ = decode_records(records, FacePreprocessor(model.config.image_size), progress=False)
    with torch.no_grad():
        soft = model(pixel_values=pixels).soft_label.numpy().astype(np.float64)
    assert soft.shape == (len(records), len(EMOTIONS)) and np.all((soft >= 0) & (soft <= 1))
    return soft


def test_members_learned_on_test_mas(trained):
    _, run = trained
    table = json.loads((run.output_dir / "confidence_scores.json").read_text())
    average = {name: row["average_accuracy"] for name, row in table["members"].items()}
    assert len(average) == 16
    for family, floor in (("ebc", EBC_MEAN), ("au", AU_MEAN)):
        values = [v for k, v in average.items() if k.startswith(family)]
        assert np.mean(values) >= floor, (family, average)
    assert min(average.values()) >= MEMBER_MIN, average


def test_soft_labels_against_the_ground_truth(trained):
    from affectnetplus_hf.metrics import functional as F
    from affectnetplus_hf.models import SoftLabeler
    from affectnetplus_hf.sources import open_synthetic
    from affectnetplus_hf.training.data import FacePreprocessor, decode_records

    sample, run = trained
    model = SoftLabeler.from_pretrained(str(run.output_dir))
    records = [r for r in open_synthetic(sample).records(None) if r.hard_label is not None]
    assert len(records) >= 900
    truth = np.stack([r.extra["soft_label_true"] for r in records]).astype(np.float64)
    one_hot = np.eye(len(EMOTIONS))[[r.hard_label for r in records]]
    blend = np.array([r.extra.get("secondary") is not None for r in records])
    assert 0.2 < blend.mean() < 0.4
    pixels, _, _ = decode_records(records, FacePreprocessor(model.config.image_size), progress=False)
    with torch.no_grad():
        output = model(pixel_values=pixels)
    soft = output.soft_label.numpy().astype(np.float64)
    ebc = output.ebc_scores.numpy().astype(np.float64)
    calibrated = output.soft_label_calibrated.numpy().astype(np.float64)
    dist = output.dist_scores.numpy().astype(np.float64)
    assert soft.shape == truth.shape and np.all((soft >= 0) & (soft <= 1))
    w_mae = {"soft": F.w_mae(truth, soft), "one_hot": F.w_mae(truth, one_hot), "ebc": F.w_mae(truth, ebc),
             "soft_blend": F.w_mae(truth[blend], soft[blend]), "one_hot_blend": F.w_mae(truth[blend], one_hot[blend]),
             "calibrated": F.w_mae(truth, calibrated), "dist": F.w_mae(truth, dist)}
    assert w_mae["soft"] <= SOFT_W_MAE, w_mae
    assert w_mae["soft"] < w_mae["one_hot"], w_mae  # measured 16.7 vs 17.0
    assert w_mae["soft_blend"] < w_mae["one_hot_blend"] - 3.0, w_mae  # measured 19.8 vs 26.5
    assert w_mae["ebc"] < w_mae["one_hot"] - 2.0, w_mae  # measured 14.0 vs 17.0
    assert w_mae["calibrated"] < w_mae["one_hot"] - CALIBRATED_MARGIN, w_mae
    assert w_mae["dist"] < w_mae["one_hot"] - CALIBRATED_MARGIN, w_mae  # measured 12.6
    np.testing.assert_allclose(calibrated.sum(axis=1), 1.0, atol=1e-5)


def test_soft_labels_rank_the_true_emotion(trained):
    from affectnetplus_hf.models import SoftLabeler
    from affectnetplus_hf.sampling import MASSplit
    from affectnetplus_hf.sources import open_multi_annotated

    sample, run = trained
    model = SoftLabeler.from_pretrained(str(run.output_dir))
    split = MASSplit.load(run.output_dir / "mas_split")
    records = {r.image_id: r for r in open_multi_annotated(sample).records(None)}
    soft = _soft_labels(model, [records[i] for i in split.test_ids])
    accuracy = float((soft.argmax(1) == split.test_labels).mean())
    assert accuracy >= ARGMAX_ACCURACY, accuracy  # chance = 0.125
