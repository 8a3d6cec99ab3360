"""Tests of the MAS split and the positive/negative selection (docs/method.md#mas-split, #sampling)."""

from __future__ import annotations

import json
import os
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from affectnetplus_hf.emotions import EMOTION_TO_INDEX, EMOTIONS, FERPLUS_TO_INDEX, au_overlap, ferplus_votes_to_spec
from affectnetplus_hf.mas import (
    SPLIT_FILE,
    MASSplit,
    SamplingWarning,
    all_negative_quotas,
    largest_remainder,
    mas_arrays,
    negative_quotas,
    select_one_vs_rest,
    split_mas,
    split_mas_records,
)
from affectnetplus_hf.records import FaceRecord
from affectnetplus_hf.votes import agreement, is_unanimous, majority_labels

N, HA, SA, SU, FE, DI, AN, CO = range(8)

# Small test sets lack most emotions; that warning is asserted where it matters.
pytestmark = pytest.mark.filterwarnings("ignore:.*no [A-Za-z]+ image in the multi-annotated set")


def one_hot_votes(emotion: int, count: int = 10, **others: int) -> list[int]:
    row = [0] * 8
    row[emotion] = count
    for name, value in others.items():
        row[EMOTION_TO_INDEX[name]] = value
    return row


# --------------------------------------------------------------------------------------------------
# Majority vote, agreement, unanimity
# --------------------------------------------------------------------------------------------------


def test_majority_simple_and_left_out_rows():
    votes = [
        [1, 6, 0, 0, 0, 0, 3, 0],  # Happy
        [0, 0, 0, 0, 0, 0, 0, 0],  # no votes
        [0, 2, 0, 0, 0, 0, 0, 0],  # Happy, but 3 non-emotion votes -> non-emotion majority
        [0, 2, 0, 0, 0, 0, 0, 0],  # Happy 2 vs 2 non-emotion: tie with "nothing"
        [0, 2, 0, 0, 0, 0, 0, 0],  # Happy 2 vs 1 non-emotion: Happy
    ]
    non_emotion = [0, 4, 3, 2, 1]
    for tie in ("drop", "first", "random"):
        assert majority_labels(votes, non_emotion, tie=tie).tolist() == [HA, -1, -1, -1, HA]


def test_majority_ties_drop_first_random():
    votes = np.array(
        [
            [0, 0, 4, 4, 0, 0, 0, 0],  # Sad = Surprise
            [0, 3, 0, 0, 0, 0, 0, 3],  # Happy = Contempt
            [5, 0, 0, 0, 0, 0, 0, 0],  # no tie
        ]
    )
    assert majority_labels(votes, tie="drop").tolist() == [-1, -1, N]
    # "first", label-space order: Sad (2) before Surprise (3).
    assert majority_labels(votes, tie="first").tolist() == [SA, HA, N]
    # FER+ lists surprise before sadness (neutral, happiness, surprise, sadness, anger, disgust, fear, contempt).
    assert majority_labels(votes, tie="first", source_order=FERPLUS_TO_INDEX).tolist() == [SU, HA, N]
    # The per-image query keyword wins when it is among the tied emotions, else source order.
    assert majority_labels(votes, tie="first", preferred=[SU, FE, -1]).tolist() == [SU, HA, N]
    # "random": seeded, reproducible, always one of the tied emotions.
    many = np.repeat(votes[:1], 200, axis=0)
    drawn = majority_labels(many, tie="random", seed=3)
    assert set(drawn.tolist()) == {SA, SU}
    assert np.array_equal(drawn, majority_labels(many, tie="random", seed=3))
    assert not np.array_equal(drawn, majority_labels(many, tie="random", seed=4))


def test_agreement_and_unanimity():
    votes = [
        [0, 10, 0, 0, 0, 0, 0, 0],
        [0, 9, 0, 0, 0, 0, 0, 0],  # + 1 non-emotion vote
        [1, 0, 0, 0, 0, 0, 0, 0],  # a single annotator is not "all annotators agree"
        [4, 0, 0, 4, 0, 0, 0, 0],
        [0, 0, 0, 0, 0, 0, 0, 0],
    ]
    non_emotion = [0, 1, 0, 2, 0]
    np.testing.assert_allclose(agreement(votes, non_emotion), [1.0, 0.9, 1.0, 0.4, 0.0])
    assert is_unanimous(votes, non_emotion).tolist() == [True, False, False, False, False]
    assert is_unanimous(votes, non_emotion, min_annotators=1).tolist() == [True, False, True, False, False]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: majority_labels([[1, 2, 3]]), "votes must have shape"),
        (
            lambda: majority_labels([[0] * 8, [0, -1, 0, 0, 0, 0, 0, 0]]),
            "negative count at row 1, column 1 \\(Happy\\)",
        ),
        (lambda: majority_labels([[0, np.nan, 0, 0, 0, 0, 0, 0]]), "non-finite value"),
        (lambda: majority_labels([[0, 1.5, 0, 0, 0, 0, 0, 0]]), "non-whole count at row 0"),
        (lambda: majority_labels([[1] * 8], [0, 0]), "non_emotion_votes has 2 entries but votes has 1"),
        (lambda: majority_labels([[1] * 8], tie="keyword"), "tie must be one of"),
        (
            lambda: majority_labels([[1] * 8], tie="first", source_order=[0, 1, 2]),
            "source_order must be a permutation",
        ),
        (lambda: majority_labels([[1] * 8], tie="first", preferred=[9]), "preferred row 0"),
        (lambda: split_mas([[1] * 8, [1] * 8], ["a"]), "image_ids has 1 entries but votes has 2"),
        (lambda: split_mas([[1] * 8, [1] * 8], ["a", "a"]), "image_ids must be unique"),
        (lambda: split_mas([[1] * 8], [""]), "image_ids row 0"),
        (lambda: split_mas([[1] * 8], ["a"], n_test_per_class=-1), "n_test_per_class"),
        (lambda: split_mas([[1] * 8], ["a"], max_test_fraction=1.5), "max_test_fraction"),
        (lambda: select_one_vs_rest([0, 1, 2], 8), "emotion must be an index in 0..7"),
        (lambda: select_one_vs_rest([0, 1, 2], "Joy"), "emotion must be one of"),
        (lambda: select_one_vs_rest([0, 1, 2], 1, neg_ratio=0), "neg_ratio must be a finite number > 0"),
        (lambda: select_one_vs_rest([0, 1, 2], 1, neg_ratio=float("nan")), "neg_ratio"),
        (lambda: select_one_vs_rest([0, -1, 2], 1), "labels row 1 is -1.0; expected a label-space index"),
        (lambda: select_one_vs_rest([0, 1, 2], 1, overlap="table3"), "overlap must be"),
        (lambda: select_one_vs_rest([0, 1, 2], 1, epoch=-1), "epoch must be"),
        (lambda: negative_quotas([1, 2, 3], 1), "class_counts must have shape \\(8,\\)"),
    ],
)
def test_bad_input_is_a_clear_value_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# --------------------------------------------------------------------------------------------------
# Negative quotas (docs/method.md#sampling), hand-worked
# --------------------------------------------------------------------------------------------------

LARGE = [1000] * 8


def test_happy_quotas_hand_worked():
    # Happy has AUs 6, 12, 25 (Table 2). Shared: Sad AU6, Fear AU25, Disgust AU25, Anger AU25,
    # Contempt AU12 -> 1 each; Surprise and Neutral share none -> 0.
    counts = list(LARGE)
    counts[HA] = 100
    q = negative_quotas(counts, "Happy")
    assert q.weights == (0, 0, 1, 0, 1, 1, 1, 1)
    # n_neg = round(1.0 x 100) = 100; uniform 20 % = 20; AU part 80 over 5 equal weights = 16 each.
    assert (q.n_pos, q.n_neg, q.n_uniform_requested, q.n_overlap_requested) == (100, 100, 20, 80)
    assert q.overlap_quotas == (0, 0, 16, 0, 16, 16, 16, 16)
    assert q.n_uniform == 20 and q.n_selected == 100 and q.shortfall == 0


def test_disgust_quotas_table2_and_paper_overlap():
    counts = list(LARGE)
    counts[DI] = 100
    # Table 2: Disgust shares Happy 1 (25), Sad 1 (17), Surprise 1 (27), Fear 2 (25, 27), Anger 3 (10, 17, 25).
    # 80 x w / 8 -> 10, 10, 10, 20, 30 (exact).
    q = negative_quotas(counts, "Disgust")
    assert q.overlap_quotas == (0, 10, 10, 10, 20, 0, 30, 0)
    # Printed Table 3: Disgust-Anger = 4, sum 9. 80 x w / 9 = 8.89, 8.89, 8.89, 17.78, 35.56 -> floors
    # 8+8+8+17+35 = 76; the 4 units left go to the largest remainders .89, .89, .89 (Happy, Sad, Surprise)
    # and .78 (Fear): 9, 9, 9, 18, 35.
    q = negative_quotas(counts, "Disgust", overlap="paper")
    assert q.weights[AN] == 4
    assert q.overlap_quotas == (0, 9, 9, 9, 18, 0, 35, 0)
    assert sum(q.overlap_quotas) + q.n_uniform == 100


def test_neutral_is_all_uniform():
    counts = list(LARGE)
    counts[N] = 100
    q = negative_quotas(counts, "Neutral")
    assert q.overlap_quotas == (0,) * 8 and q.n_uniform == 100
    labels = np.repeat(np.arange(8), 300)
    labels = labels[labels != N][: 7 * 300]
    labels = np.concatenate([np.zeros(100, dtype=int), labels])
    _, negatives = select_one_vs_rest(labels, "Neutral", seed=0)
    per_emotion = np.bincount(labels[negatives], minlength=8)
    assert per_emotion[N] == 0 and per_emotion.sum() == 100
    assert (per_emotion[1:] > 0).all()  # a uniform draw of 100 over 7 equal pools reaches every one


def test_rounding_half_up_of_n_neg_and_uniform_part():
    counts = list(LARGE)
    counts[HA] = 5
    # n_neg = round_half_up(0.5 x 5 = 2.5) = 3; uniform = round_half_up(0.2 x 3 = 0.6) = 1; AU part 2:
    # 2 x 1/5 = 0.4 each -> floors 0, the 2 units go to the lowest indices among equal remainders: Sad, Fear.
    q = negative_quotas(counts, HA, neg_ratio=0.5)
    assert (q.n_neg, q.n_uniform_requested, q.n_overlap_requested) == (3, 1, 2)
    assert q.overlap_quotas == (0, 0, 1, 0, 1, 0, 0, 0)


def test_small_pool_is_redistributed_in_the_same_proportions():
    counts = list(LARGE)
    counts[HA] = 100
    counts[SA] = 5
    # Happy: 80 over Sad, Fear, Disgust, Anger, Contempt = 16 each, but Sad holds only 5.
    # Sad capped at 5; 75 left over 4 equal weights = 18.75 -> 18 each + 3 units to the lowest indices
    # with equal remainders (Fear, Disgust, Anger): 19, 19, 19, 18. Total 5 + 19 + 19 + 19 + 18 = 80.
    q = negative_quotas(counts, HA)
    assert q.overlap_quotas == (0, 0, 5, 0, 19, 19, 19, 18)
    assert q.n_uniform == 20


def test_what_no_overlapping_emotion_can_take_goes_to_the_uniform_part():
    counts = list(LARGE)
    counts[CO] = 100
    counts[HA] = 10
    # Contempt (AUs 12, 14) overlaps only Happy (AU12): AU part 80, Happy holds 10 -> 70 move to uniform.
    q = negative_quotas(counts, CO)
    assert q.weights == (0, 1, 0, 0, 0, 0, 0, 0)
    assert q.overlap_quotas == (0, 10, 0, 0, 0, 0, 0, 0)
    assert q.n_uniform == 20 + 70


def test_exhausted_pool_uses_everything_and_warns():
    labels = np.array([HA] * 50 + [SA] * 5 + [FE] * 3 + [N] * 2)
    with pytest.warns(SamplingWarning, match="other emotions hold only 10 images"):
        positives, negatives = select_one_vs_rest(labels, HA)
    assert len(positives) == 50
    assert negatives.tolist() == list(range(50, 60))


def test_no_positive_warns_and_selects_nothing():
    with pytest.warns(SamplingWarning, match="one-vs-rest Neutral: no positive image"):
        positives, negatives = select_one_vs_rest([1, 1, 2], "Neutral")
    assert positives.size == 0 and negatives.size == 0


def test_no_warning_when_the_pool_suffices():
    labels = np.repeat(np.arange(8), 20)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        select_one_vs_rest(labels, SA)


def test_selection_meets_the_quotas():
    rng = np.random.default_rng(0)
    labels = rng.permutation(np.repeat(np.arange(8), [400, 100, 300, 250, 200, 150, 350, 120]))
    positives, negatives = select_one_vs_rest(labels, FE, neg_ratio=1.0, uniform_fraction=0.0)
    q = negative_quotas(np.bincount(labels, minlength=8), FE, uniform_fraction=0.0)
    # Without a uniform part the per-emotion counts are exactly the AU quotas.
    assert np.bincount(labels[negatives], minlength=8).tolist() == list(q.overlap_quotas)
    assert sorted(positives.tolist()) == np.flatnonzero(labels == FE).tolist()
    # With the 20 % uniform part every emotion gets at least its AU quota and the total is n_neg.
    positives, negatives = select_one_vs_rest(labels, FE)
    q = negative_quotas(np.bincount(labels, minlength=8), FE)
    per_emotion = np.bincount(labels[negatives], minlength=8)
    assert (per_emotion >= np.asarray(q.overlap_quotas)).all()
    assert len(negatives) == q.n_neg == 200


def test_determinism_and_per_epoch_redraw():
    labels = np.random.default_rng(1).integers(0, 8, size=2000)
    first = select_one_vs_rest(labels, AN, seed=7)
    again = select_one_vs_rest(labels, AN, seed=7)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not np.array_equal(first[1], select_one_vs_rest(labels, AN, seed=8)[1])
    epoch1 = select_one_vs_rest(labels, AN, seed=7, epoch=1)[1]
    epoch2 = select_one_vs_rest(labels, AN, seed=7, epoch=2)[1]
    assert not np.array_equal(epoch1, epoch2)
    assert np.array_equal(epoch1, select_one_vs_rest(labels, AN, seed=7, epoch=1)[1])
    # Re-drawing changes which images are taken, never how many per emotion in the AU part.
    q = negative_quotas(np.bincount(labels, minlength=8), AN)
    for negatives in (epoch1, epoch2):
        assert (np.bincount(labels[negatives], minlength=8) >= np.asarray(q.overlap_quotas)).all()


def test_all_negative_quotas_and_split_ids():
    votes, ids = make_mas()
    split = split_mas(votes, ids, n_test_per_class=10)
    table = all_negative_quotas(np.bincount(split.train_labels, minlength=8))
    assert list(table) == list(EMOTIONS)
    # 50 train images per emotion: n_neg 50, uniform 10, AU part 40 (Happy: 5 overlapping emotions -> 8 each).
    assert table["Happy"].overlap_quotas == (0, 0, 8, 0, 8, 8, 8, 8) and table["Happy"].n_uniform == 10
    assert table["Neutral"].n_uniform == 50
    positives, negatives = split.one_vs_rest_ids("Happy", seed=2)
    assert len(positives) == 50 and len(negatives) == 50
    assert all(i.startswith("Happy/") for i in positives)
    assert not any(i.startswith("Happy/") for i in negatives)
    assert set(positives + negatives) <= set(split.train_ids)


def test_largest_remainder():
    assert largest_remainder(80, [0, 1, 1, 1, 2, 0, 4, 0]).tolist() == [0, 9, 9, 9, 18, 0, 35, 0]
    assert largest_remainder(10, [1, 1, 1]).tolist() == [4, 3, 3]
    assert largest_remainder(7, [0, 0]).tolist() == [0, 0]


@settings(max_examples=60, deadline=None)
@given(
    pools=st.lists(st.integers(0, 60), min_size=8, max_size=8),
    emotion=st.integers(0, 7),
    neg_ratio=st.floats(0.1, 4.0),
    seed=st.integers(0, 2**16),
    overlap=st.sampled_from(["table2", "paper"]),
    epoch=st.none() | st.integers(0, 5),
)
def test_selection_properties(pools, emotion, neg_ratio, seed, overlap, epoch):
    labels = np.random.default_rng(seed).permutation(np.repeat(np.arange(8), pools))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplingWarning)
        positives, negatives = select_one_vs_rest(labels, emotion, neg_ratio, overlap, seed=seed, epoch=epoch)
        q = negative_quotas(pools, emotion, neg_ratio, overlap)
    assert len(np.unique(negatives)) == len(negatives)  # without replacement
    assert not np.isin(negatives, positives).any()
    assert (labels[negatives] != emotion).all()
    assert len(positives) == pools[emotion]
    assert len(negatives) == min(q.n_neg, q.n_available) == q.n_selected
    per_emotion = np.bincount(labels[negatives], minlength=8)
    assert (per_emotion >= np.asarray(q.overlap_quotas)).all()
    weights = au_overlap(overlap)[emotion]
    for other in range(8):  # the AU part only goes to overlapping emotions, within their pools
        assert q.overlap_quotas[other] <= (pools[other] if other != emotion else 0)
        if weights[other] == 0 or other == emotion:
            assert q.overlap_quotas[other] == 0


@settings(max_examples=40, deadline=None)
@given(n_pos=st.integers(1, 300), emotion=st.integers(1, 7), neg_ratio=st.sampled_from([0.5, 1.0, 2.0, 3.0]))
def test_quotas_match_the_method_when_pools_are_large(n_pos, emotion, neg_ratio):
    counts = [10_000] * 8
    counts[emotion] = n_pos
    q = negative_quotas(counts, emotion, neg_ratio)
    n_neg = int(np.floor(neg_ratio * n_pos + 0.5))
    n_uniform = int(np.floor(0.2 * n_neg + 0.5))
    assert q.n_neg == n_neg and q.n_uniform == n_uniform
    assert list(q.overlap_quotas) == largest_remainder(n_neg - n_uniform, q.weights).tolist()


# --------------------------------------------------------------------------------------------------
# train/test-MAS split (docs/method.md#mas-split)
# --------------------------------------------------------------------------------------------------


def make_mas(per_emotion_unanimous=30, per_emotion_other=30, seed=0):
    """Every emotion with some unanimous (10/10) and some 6/10 images; ids shuffled."""
    votes, ids = [], []
    for e in range(8):
        for k in range(per_emotion_unanimous):
            votes.append(one_hot_votes(e))
            ids.append(f"{EMOTIONS[e]}/u{k:03d}.png")
        for k in range(per_emotion_other):
            row = one_hot_votes(e, 6)
            row[(e + 1) % 8] = 4
            votes.append(row)
            ids.append(f"{EMOTIONS[e]}/o{k:03d}.png")
    order = np.random.default_rng(seed).permutation(len(ids))
    return np.asarray(votes)[order], [ids[i] for i in order]


def test_split_with_enough_unanimous_images():
    votes, ids = make_mas()
    split = split_mas(votes, ids, n_test_per_class=10, seed=0)
    assert len(split.test_ids) == 80 and len(split.train_ids) == 400
    assert set(split.train_ids).isdisjoint(split.test_ids)
    assert np.bincount(split.test_labels, minlength=8).tolist() == [10] * 8
    assert split.test_unanimous.all()
    assert all("/u" in image_id for image_id in split.test_ids)
    for e, name in enumerate(EMOTIONS):
        row = split.report["per_emotion"][name]
        assert row == {
            "n_images": 60,
            "n_unanimous": 30,
            "n_test": 10,
            "n_test_unanimous": 10,
            "n_train": 50,
            "lowest_agreement_used": 1.0,
            "quota_met": True,
        }
    assert split.train_ids == sorted(split.train_ids) and split.test_ids == sorted(split.test_ids)
    # Each id keeps its own majority label.
    labels = split.label_of()
    assert all(labels[image_id] == EMOTION_TO_INDEX[image_id.split("/")[0]] for image_id in ids)


def test_split_is_deterministic_and_independent_of_input_order():
    votes, ids = make_mas(seed=0)
    a = split_mas(votes, ids, n_test_per_class=10, seed=5, tie="random")
    order = np.random.default_rng(9).permutation(len(ids))
    b = split_mas(votes[order], [ids[i] for i in order], n_test_per_class=10, seed=5, tie="random")
    assert a.test_ids == b.test_ids and a.train_ids == b.train_ids
    assert np.array_equal(a.test_labels, b.test_labels)
    c = split_mas(votes, ids, n_test_per_class=10, seed=6)
    assert a.test_ids != c.test_ids


def rare_disgust_mas(n_disgust: int, n_happy: int = 60):
    """Disgust: 1 unanimous image (like FER+ Training), 3 at 0.9, 10 at 0.8, the rest at 0.5."""
    votes, ids = [], []
    for k in range(n_disgust):
        if k == 0:
            row = one_hot_votes(DI, 10)
        elif k <= 3:
            row = one_hot_votes(DI, 9, Anger=1)
        elif k <= 13:
            row = one_hot_votes(DI, 8, Anger=2)
        else:
            row = one_hot_votes(DI, 5, Anger=3, Sad=2)
        votes.append(row)
        ids.append(f"disgust/{k:03d}.png")
    for k in range(n_happy):
        votes.append(one_hot_votes(HA))
        ids.append(f"happy/{k:03d}.png")
    return np.asarray(votes), ids


def test_fill_rule_for_a_rare_emotion():
    votes, ids = rare_disgust_mas(50)  # cap = floor(0.2 x 50) = 10 = the quota
    with warnings.catch_warnings():
        warnings.simplefilter("error", SamplingWarning)
        warnings.filterwarnings("ignore", message=".*no (Neutral|Sad|Surprise|Fear|Anger|Contempt) image")
        split = split_mas(votes, ids, n_test_per_class=10, seed=0)
    test_disgust = sorted(i for i, label in zip(split.test_ids, split.test_labels) if label == DI)
    # The unanimous image, the three 0.9 images, then 6 of the ten 0.8 images (seeded draw).
    assert len(test_disgust) == 10
    assert {"disgust/000.png", "disgust/001.png", "disgust/002.png", "disgust/003.png"} <= set(test_disgust)
    assert all(4 <= int(i[8:11]) <= 13 for i in test_disgust[4:])
    row = split.report["per_emotion"]["Disgust"]
    assert row["n_unanimous"] == 1 and row["n_test"] == 10 and row["n_test_unanimous"] == 1
    assert row["lowest_agreement_used"] == pytest.approx(0.8) and row["quota_met"]
    other = split_mas(votes, ids, n_test_per_class=10, seed=1)
    assert sorted(i for i, lab in zip(other.test_ids, other.test_labels) if lab == DI) != test_disgust


def test_fill_is_capped_by_max_test_fraction_and_reported():
    votes, ids = rare_disgust_mas(20, n_happy=40)  # Disgust cap = floor(0.2 x 20) = 4
    with pytest.warns(SamplingWarning) as caught:
        split = split_mas(votes, ids, n_test_per_class=10, seed=0)
    messages = [str(w.message) for w in caught]
    assert any("Disgust has 1 unanimous images of 20" in m for m in messages)
    too_many = "Happy takes 10 unanimous test images, more than max_test_fraction=0.2 of its 40"
    assert any(too_many in m for m in messages)
    assert {w.filename for w in caught} == {__file__}  # each warning points at the caller of split_mas
    row = split.report["per_emotion"]["Disgust"]
    assert row["n_test"] == 4 and row["n_test_unanimous"] == 1 and not row["quota_met"]
    assert row["lowest_agreement_used"] == pytest.approx(0.9)
    assert row["n_train"] == 16
    # Happy has 40 unanimous images: its 10 are taken even though the cap (8) is lower, with a warning.
    assert split.report["per_emotion"]["Happy"]["n_test"] == 10


def test_strict_unanimous_takes_only_unanimous_images_and_warns():
    votes, ids = rare_disgust_mas(50)
    short = "Disgust has 1 unanimous images, fewer than n_test_per_class=10"
    with pytest.warns(SamplingWarning, match=short) as caught:
        split = split_mas(votes, ids, n_test_per_class=10, strict_unanimous=True)
    assert {w.filename for w in caught} == {__file__}
    row = split.report["per_emotion"]["Disgust"]
    assert row["n_test"] == 1 and row["n_test_unanimous"] == 1 and row["lowest_agreement_used"] == 1.0
    assert split.test_unanimous.all()


def test_left_out_images_are_listed_with_their_reason():
    votes = [one_hot_votes(HA), [0, 4, 4, 0, 0, 0, 0, 0], [0, 1, 0, 0, 0, 0, 0, 0], [0] * 8]
    non_emotion = [0, 0, 5, 10]
    ids = ["a", "b", "c", "d"]
    split = split_mas(votes, ids, non_emotion, n_test_per_class=0)
    assert split.train_ids == ["a"] and split.test_ids == []
    assert dict(zip(split.dropped_ids, split.dropped_reasons)) == {
        "b": "tie",
        "c": "non_emotion_majority",
        "d": "no_emotion_votes",
    }
    assert split.report["dropped"] == {"tie": 1, "non_emotion_majority": 1, "no_emotion_votes": 1}
    split = split_mas(votes, ids, non_emotion, n_test_per_class=0, tie="first")
    assert split.train_ids == ["a", "b"] and split.train_labels.tolist() == [HA, HA]


# The first rows of FER+'s fer2013new.csv (votes: neutral, happiness, surprise, sadness, anger, disgust,
# fear, contempt, unknown, NF). FER+ — Copyright (c) Microsoft Corporation. MIT License: Permission is
# hereby granted, free of charge, to any person obtaining a copy of this software and associated
# documentation files (the "Software"), to deal in the Software without restriction, including without
# limitation the rights to use, copy, modify, merge, publish, distribute, sublicense, and/or sell copies
# of the Software, and to permit persons to whom the Software is furnished to do so, subject to the
# following conditions: The above copyright notice and this permission notice shall be included in all
# copies or substantial portions of the Software. THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF
# ANY KIND, EXPRESS OR IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY, FITNESS
# FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE AUTHORS OR COPYRIGHT HOLDERS BE
# LIABLE FOR ANY CLAIM, DAMAGES OR OTHER LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE,
# ARISING FROM, OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE SOFTWARE.
FERPLUS_ROWS = """\
fer0000000.png,4,0,0,1,3,2,0,0,0,0
fer0000001.png,6,0,1,1,0,0,0,0,2,0
fer0000006.png,2,0,0,8,0,0,0,0,0,0
fer0000007.png,0,10,0,0,0,0,0,0,0,0
fer0000008.png,0,10,0,0,0,0,0,0,0,0
fer0000009.png,0,0,6,0,0,0,4,0,0,0
fer0000011.png,10,0,0,0,0,0,0,0,0,0
fer0000014.png,0,10,0,0,0,0,0,0,0,0
fer0000016.png,4,6,0,0,0,0,0,0,0,0
fer0000018.png,1,0,2,4,2,0,0,0,1,0
fer0000026.png,4,2,4,0,0,0,0,0,0,0
fer0000027.png,0,0,0,0,7,1,0,0,2,0
fer0000031.png,10,0,0,0,0,0,0,0,0,0
fer0000033.png,10,0,0,0,0,0,0,0,0,0
"""


def ferplus_arrays():
    names, votes, non_emotion = [], [], []
    for line in FERPLUS_ROWS.splitlines():
        fields = line.split(",")
        names.append(f"FER2013Train/{fields[0]}")
        counts = [int(v) for v in fields[1:]]
        votes.append(ferplus_votes_to_spec(np.asarray(counts[:8])))
        non_emotion.append(counts[8] + counts[9])
    return np.asarray(votes), np.asarray(non_emotion), names


def test_split_on_real_ferplus_rows():
    votes, non_emotion, ids = ferplus_arrays()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplingWarning)
        split = split_mas(
            votes,
            ids,
            non_emotion,
            n_test_per_class=1,
            max_test_fraction=0.5,
            tie="first",
            source_order=FERPLUS_TO_INDEX,
        )
    labels = split.label_of()
    # fer0000026: neutral 4 = surprise 4, FER+ lists neutral first.
    assert labels["FER2013Train/fer0000026.png"] == N
    assert labels["FER2013Train/fer0000027.png"] == AN
    assert labels["FER2013Train/fer0000006.png"] == SA
    per = split.report["per_emotion"]
    assert per["Happy"]["n_unanimous"] == 3 and per["Neutral"]["n_unanimous"] == 3
    assert per["Happy"]["n_test"] == 1 and per["Happy"]["lowest_agreement_used"] == 1.0
    # Sad has 2 images (0.8 and 0.4 agreement) and no unanimous one: cap floor(0.5 x 2) = 1 -> the 0.8 one.
    assert per["Sad"]["n_test_unanimous"] == 0 and per["Sad"]["lowest_agreement_used"] == pytest.approx(0.8)
    assert "FER2013Train/fer0000006.png" in split.test_ids
    assert split.dropped_ids == []
    assert len(split.train_ids) + len(split.test_ids) == len(ids)
    # Under the default tie="drop" the neutral/surprise tie is left out.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplingWarning)
        dropped = split_mas(votes, ids, non_emotion, n_test_per_class=1)
    assert dropped.dropped_ids == ["FER2013Train/fer0000026.png"] and dropped.dropped_reasons == ["tie"]


def test_save_load_round_trip(tmp_path):
    votes, ids = rare_disgust_mas(20)
    votes[5] = [0, 0, 0, 0, 0, 3, 3, 0]  # a tie, dropped
    ids[6] = 'disgust/with, comma "and quote".png'
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplingWarning)
        split = split_mas(votes, ids, n_test_per_class=5, seed=3)
    split.save(tmp_path / "mas")
    assert sorted(os.listdir(tmp_path / "mas")) == ["report.json", "split.csv"]  # no temp files left
    loaded = MASSplit.load(tmp_path / "mas")
    assert loaded.train_ids == split.train_ids and loaded.test_ids == split.test_ids
    assert np.array_equal(loaded.train_labels, split.train_labels)
    assert np.array_equal(loaded.test_labels, split.test_labels)
    np.testing.assert_array_equal(loaded.train_agreement, split.train_agreement)
    np.testing.assert_array_equal(loaded.test_unanimous, split.test_unanimous)
    assert loaded.dropped_ids == split.dropped_ids == ["disgust/005.png"]
    assert loaded.dropped_reasons == ["tie"]
    assert loaded.report == json.loads(json.dumps(split.report))


def test_load_errors_name_the_file_and_line(tmp_path):
    with pytest.raises(FileNotFoundError, match="split.csv"):
        MASSplit.load(tmp_path)
    split = split_mas([one_hot_votes(HA), one_hot_votes(SA)], ["a", "b"], n_test_per_class=0)
    split.save(tmp_path)
    path = tmp_path / SPLIT_FILE
    lines = path.read_text().splitlines()
    path.write_text("\n".join([lines[0], lines[1], lines[2].replace(",2,Sad,", ",9,Sad,")]) + "\n")
    with pytest.raises(ValueError, match="split.csv, line 3: label '9'"):
        MASSplit.load(tmp_path)
    path.write_text("image_id,label\na,1\n")
    with pytest.raises(ValueError, match="columns must be"):
        MASSplit.load(tmp_path)


def test_records_helpers():
    votes, non_emotion, ids = ferplus_arrays()
    records = [
        FaceRecord(image_id=i, votes=v.astype(np.int64), non_emotion_votes=int(n), source="ferplus")
        for i, v, n in zip(ids, votes, non_emotion)
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplingWarning)
        from_records = split_mas_records(records, n_test_per_class=1)
        from_arrays = split_mas(votes, ids, non_emotion, n_test_per_class=1)
    assert from_records.test_ids == from_arrays.test_ids and from_records.train_ids == from_arrays.train_ids
    records.append(FaceRecord(image_id="x.png", image_path="/data/x.png"))
    with pytest.raises(ValueError, match="record 14 \\(/data/x.png\\) has no votes"):
        mas_arrays(records)


@settings(max_examples=40, deadline=None)
@given(
    votes=st.lists(st.lists(st.integers(0, 4), min_size=8, max_size=8), min_size=1, max_size=60),
    n_test=st.integers(0, 5),
    fraction=st.sampled_from([0.0, 0.2, 0.5, 1.0]),
    strict=st.booleans(),
    tie=st.sampled_from(["drop", "first", "random"]),
)
def test_split_properties(votes, n_test, fraction, strict, tie):
    ids = [f"img{i:03d}" for i in range(len(votes))]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplingWarning)
        split = split_mas(
            votes, ids, n_test_per_class=n_test, max_test_fraction=fraction, strict_unanimous=strict, tie=tie, seed=1
        )
    everything = split.train_ids + split.test_ids + split.dropped_ids
    assert sorted(everything) == ids  # nothing lost, nothing twice
    assert len(split.train_labels) == len(split.train_ids) and (split.train_labels >= 0).all()
    per_test = np.bincount(split.test_labels, minlength=8)
    for e, name in enumerate(EMOTIONS):
        row = split.report["per_emotion"][name]
        assert per_test[e] == row["n_test"] <= n_test
        assert row["n_test_unanimous"] == min(row["n_unanimous"], n_test)
        if strict:
            assert row["n_test"] == row["n_test_unanimous"]
        else:
            cap = int(np.floor(fraction * row["n_images"] + 1e-9))
            assert row["n_test"] == max(row["n_test_unanimous"], min(n_test, cap))
