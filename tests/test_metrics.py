"""Soft- and hard-label metrics (`docs/method.md#metrics`): hand-worked examples, properties, agreement with a
per-sample loop, bad input."""

from __future__ import annotations

import itertools
import json
import re
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from affectnetplus_hf.emotions import EMOTIONS
from affectnetplus_hf.metrics import (
    DEFAULT_EPSILON,
    MetricTable,
    accuracy,
    average_accuracy,
    ced_auc,
    ced_curve,
    confusion_matrix,
    failure_rate,
    functional,
    ground_truth_weights,
    hard_label_metrics,
    mean_error,
    precision_recall_f1,
    soft_label_metrics,
    validate_soft_labels,
    w_auc,
    w_fr,
    w_mae,
    weighted_error_single,
    weighted_errors,
)

H8 = sum(Fraction(1, r) for r in range(1, 9))  # 1 + 1/2 + ... + 1/8 = 761/280: Σ w with ordinal ranks


def row(*values: float) -> list[float]:
    """A soft label: the given leading values, zeros after."""
    return list(values) + [0.0] * (8 - len(values))


# --------------------------------------------------------------------------------------------------
# hand-worked e_k
# --------------------------------------------------------------------------------------------------
# Sample A: ranks Neutral 1, Happy 2, Sad 3, then the five zeros (Surprise..Contempt) 4..8 (ordinal)
# or all 6 = mean(4..8) (average). |d| = [0.2, 0.1, 0.1, 0.1, 0, 0, 0, 0].
REF_A, PRED_A = row(0.6, 0.3, 0.1), row(0.4, 0.4, 0.2, 0.1)
# ordinal: Σ w|d| = 1*0.2 + 1/2*0.1 + 1/3*0.1 + 1/4*0.1 (Surprise, rank 4) = 0.308333...
SUM_A_ORDINAL = (
    Fraction(2, 10)
    + Fraction(1, 2) * Fraction(1, 10)
    + Fraction(1, 3) * Fraction(1, 10)
    + Fraction(1, 4) * Fraction(1, 10)
)
# average: the zeros share rank 6: Σ w|d| = 0.2 + 0.05 + 0.1/3 + 0.1/6 = 0.3; Σ w = 1 + 1/2 + 1/3 + 5/6 = 8/3
SUM_A_AVERAGE = Fraction(2, 10) + Fraction(1, 20) + Fraction(1, 30) + Fraction(1, 60)
WEIGHTS_A_AVERAGE = 1 + Fraction(1, 2) + Fraction(1, 3) + 5 * Fraction(1, 6)

# Sample B: a tie at the top. ordinal: Neutral 1, Happy 2; average: both 1.5 (w = 2/3), zeros 3..8 -> 5.5 (w = 2/11).
REF_B, PRED_B = row(0.5, 0.5), row(1.0, 0.0)  # |d| = [0.5, 0.5, 0 ...]
SUM_B_ORDINAL = 1 * Fraction(1, 2) + Fraction(1, 2) * Fraction(1, 2)  # 0.75
SUM_B_AVERAGE = 2 * Fraction(2, 3) * Fraction(1, 2)  # 2/3
WEIGHTS_B_AVERAGE = 2 * Fraction(2, 3) + 6 * Fraction(2, 11)

# Sample C: all mass moved from Neutral (rank 1) to Happy (rank 2 ordinal; zeros tie at 2..8 -> 5 average).
REF_C, PRED_C = row(1.0), row(0.0, 1.0)  # |d| = [1, 1, 0 ...]
SUM_C_ORDINAL = 1 + Fraction(1, 2)
SUM_C_AVERAGE = 1 + Fraction(1, 5)
WEIGHTS_C_AVERAGE = 1 + 7 * Fraction(1, 5)

EXPECTED_E = {
    # (normalize, ties): (e_A, e_B, e_C)
    (True, "ordinal"): (SUM_A_ORDINAL / H8, SUM_B_ORDINAL / H8, SUM_C_ORDINAL / H8),
    (False, "ordinal"): (SUM_A_ORDINAL / 8, SUM_B_ORDINAL / 8, SUM_C_ORDINAL / 8),
    (True, "average"): (
        SUM_A_AVERAGE / WEIGHTS_A_AVERAGE,
        SUM_B_AVERAGE / WEIGHTS_B_AVERAGE,
        SUM_C_AVERAGE / WEIGHTS_C_AVERAGE,
    ),
    (False, "average"): (SUM_A_AVERAGE / 8, SUM_B_AVERAGE / 8, SUM_C_AVERAGE / 8),
}
REFS = np.array([REF_A, REF_B, REF_C])
PREDS = np.array([PRED_A, PRED_B, PRED_C])


@pytest.mark.parametrize(("normalize", "ties"), list(EXPECTED_E))
def test_weighted_errors_hand_worked(normalize, ties):
    expected = [float(e) for e in EXPECTED_E[(normalize, ties)]]
    got = weighted_errors(REFS, PREDS, normalize=normalize, ties=ties)
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    loop = [weighted_error_single(r, p, normalize=normalize, ties=ties) for r, p in zip(REFS, PREDS)]
    np.testing.assert_allclose(loop, expected, rtol=1e-12)


def test_hand_worked_values_spelled_out():
    # the fractions above, as decimals, so a reader can check them
    assert float(H8) == pytest.approx(2.717857142857143)
    assert float(SUM_A_ORDINAL) == pytest.approx(0.3083333333)
    assert float(SUM_A_AVERAGE) == pytest.approx(0.3) and float(WEIGHTS_A_AVERAGE) == pytest.approx(8 / 3)
    assert float(SUM_A_AVERAGE / WEIGHTS_A_AVERAGE) == pytest.approx(0.1125)
    assert float(SUM_B_ORDINAL / H8) == pytest.approx(0.275953, abs=1e-6)
    assert float(SUM_C_ORDINAL / H8) == pytest.approx(0.551905, abs=1e-6)


def test_ground_truth_weights_ordinal_and_average():
    weights = ground_truth_weights([row(0.0, 0.5, 0.0, 0.5)], ties="ordinal")[0]
    # Happy and Surprise tie at 0.5: Happy (index 1) ranks 1, Surprise 2; zeros by index: 3, 4, 5, 6, 7, 8
    np.testing.assert_allclose(weights, [1 / 3, 1, 1 / 4, 1 / 2, 1 / 5, 1 / 6, 1 / 7, 1 / 8])
    weights = ground_truth_weights([row(0.0, 0.5, 0.0, 0.5)], ties="average")[0]
    # Happy/Surprise share (1 + 2) / 2 = 1.5; the six zeros share (3 + ... + 8) / 6 = 5.5
    np.testing.assert_allclose(weights, [2 / 11, 2 / 3, 2 / 11, 2 / 3, 2 / 11, 2 / 11, 2 / 11, 2 / 11])


def test_weights_rank_the_references_not_the_predictions():
    ref, pred = row(0.9, 0.1), row(0.1, 0.9)
    forward = weighted_errors([ref], [pred])[0]
    # |d| = [0.8, 0.8]; weights from ref: Neutral 1, Happy 1/2 -> (0.8 + 0.4) / H8
    assert forward == pytest.approx(1.2 / float(H8))
    # swapping roles keeps |d| but ranks the other vector: Happy 1, Neutral 1/2 -> same sum by symmetry here,
    # so use an asymmetric error to see the difference
    pred2 = row(0.9, 0.5)  # |d| = [0, 0.4]: only Happy (rank 2 in ref) is wrong
    assert weighted_errors([ref], [pred2])[0] == pytest.approx(0.5 * 0.4 / float(H8))
    assert weighted_errors([pred2], [ref])[0] == pytest.approx(0.5 * 0.4 / float(H8))
    pred3 = row(0.5, 0.1)  # |d| = [0.4, 0]: the top emotion is wrong -> weight 1
    assert weighted_errors([ref], [pred3])[0] == pytest.approx(1.0 * 0.4 / float(H8))


# --------------------------------------------------------------------------------------------------
# hand-worked W-MAE / W-FR / W-AUC
# --------------------------------------------------------------------------------------------------
def test_wmae_wfr_wauc_hand_worked():
    e = [float(x) for x in EXPECTED_E[(True, "ordinal")]]  # 0.113446, 0.275953, 0.551905
    assert w_mae(REFS, PREDS) == pytest.approx(100 * (e[0] + e[1] + e[2]) / 3)  # 31.3769
    assert w_mae(REFS, PREDS) == pytest.approx(31.3769, abs=1e-4)
    # only C is above 0.3
    assert w_fr(REFS, PREDS) == pytest.approx(100 / 3)
    # ε = 0.25: B (0.276) fails too; ε = 0.6: nobody fails; ε = 0.1: everybody fails
    assert w_fr(REFS, PREDS, epsilon=0.25) == pytest.approx(200 / 3)
    assert w_fr(REFS, PREDS, epsilon=0.6) == 0.0
    assert w_fr(REFS, PREDS, epsilon=0.1) == 100.0
    # W-AUC = 100 * mean(max(0, 1 - e / 0.3)) = 100 * ((1 - 0.113446/0.3) + (1 - 0.275953/0.3) + 0) / 3
    expected_auc = 100 * ((1 - e[0] / 0.3) + (1 - e[1] / 0.3) + 0) / 3
    assert w_auc(REFS, PREDS) == pytest.approx(expected_auc)
    assert w_auc(REFS, PREDS) == pytest.approx(23.4000, abs=1e-4)  # (0.621843 + 0.080158) / 3
    table = soft_label_metrics(REFS, PREDS)
    assert table == {
        "n": 3,
        "w_mae": pytest.approx(w_mae(REFS, PREDS)),
        "w_fr": pytest.approx(100 / 3),
        "w_auc": pytest.approx(expected_auc),
    }


def test_paper_normalization_is_reachable():
    e = [float(x) for x in EXPECTED_E[(False, "ordinal")]]  # 0.038542, 0.09375, 0.1875
    assert w_mae(REFS, PREDS, normalize=False) == pytest.approx(100 * sum(e) / 3)
    assert w_fr(REFS, PREDS, normalize=False) == 0.0  # nothing reaches 0.3 with the printed form


def test_reductions_of_precomputed_errors():
    errors = [0.1, 0.3, 0.45]
    assert mean_error(errors) == pytest.approx(100 * 0.85 / 3)
    assert failure_rate(errors, 0.3) == pytest.approx(100 / 3)  # 0.3 itself is not a failure (strictly greater)
    # (1 - 0.1/0.3) + (1 - 0.3/0.3) + 0 = 2/3, over 3 samples
    assert ced_auc(errors, 0.3) == pytest.approx(100 * (2 / 3) / 3)
    assert ced_auc([0.0, 0.0], 0.3) == 100.0
    assert ced_auc([0.5], 0.3) == 0.0


def test_reductions_of_precomputed_errors_by_group_are_the_metrics_by_group():
    rng = np.random.default_rng(7)
    refs, preds = rng.random((50, 8)), rng.random((50, 8))
    groups = np.array(["easy", "challenging", "difficult"])[rng.integers(0, 3, 50)]
    errors = weighted_errors(refs, preds)
    assert mean_error(errors, by=groups) == w_mae(refs, preds, by=groups)  # exactly: the same reduction
    assert failure_rate(errors, 0.2, by=groups) == w_fr(refs, preds, epsilon=0.2, by=groups)
    assert ced_auc(errors, 0.2, by=groups) == w_auc(refs, preds, epsilon=0.2, by=groups)


def test_ced_curve_steps_and_exact_area():
    errors = np.array([0.05, 0.05, 0.2, 0.4])
    x, y = ced_curve(errors, 0.3)
    np.testing.assert_allclose(x, [0.0, 0.05, 0.2, 0.3])
    np.testing.assert_allclose(y, [0.0, 0.5, 0.75, 0.75])
    # area under the right-continuous step curve = Σ y_i (x_{i+1} - x_i)
    area = float(np.sum(y[:-1] * np.diff(x)))
    assert 100 * area / 0.3 == pytest.approx(ced_auc(errors, 0.3))
    # and a fine numeric integration of CED(t) = mean(e <= t) agrees
    grid = np.linspace(0, 0.3, 300_001)
    ced = (errors[None, :] <= grid[:, None]).mean(axis=1)
    assert 100 * np.trapezoid(ced, grid) / 0.3 == pytest.approx(ced_auc(errors, 0.3), abs=1e-3)


# --------------------------------------------------------------------------------------------------
# properties
# --------------------------------------------------------------------------------------------------
# values on a 1/20 grid: plenty of ties, no sub-normal differences
grid_values = st.integers(0, 20).map(lambda v: v / 20)


@st.composite
def soft_label_pairs(draw, max_rows: int = 12):
    n = draw(st.integers(1, max_rows))
    shape = (n, 8)
    refs = draw(hnp.arrays(np.float64, shape, elements=grid_values))
    preds = draw(hnp.arrays(np.float64, shape, elements=grid_values))
    return refs, preds


@settings(max_examples=60, deadline=None)
@given(soft_label_pairs(), st.booleans(), st.sampled_from(["ordinal", "average"]))
def test_vectorised_matches_per_sample_loop(pair, normalize, ties):
    refs, preds = pair
    vectorised = weighted_errors(refs, preds, normalize=normalize, ties=ties)
    loop = [weighted_error_single(r, p, normalize=normalize, ties=ties) for r, p in zip(refs, preds)]
    np.testing.assert_allclose(vectorised, loop, rtol=1e-12, atol=1e-15)


@settings(max_examples=60, deadline=None)
@given(soft_label_pairs(), st.booleans(), st.sampled_from(["ordinal", "average"]))
def test_wmae_zero_iff_equal_and_bounded(pair, normalize, ties):
    refs, preds = pair
    assert w_mae(refs, refs, normalize=normalize, ties=ties) == 0.0
    value = w_mae(refs, preds, normalize=normalize, ties=ties)
    assert 0.0 <= value <= 100.0
    assert (value == 0.0) == bool(np.array_equal(refs, preds))
    for metric in (w_fr, w_auc):
        assert 0.0 <= metric(refs, preds, normalize=normalize, ties=ties) <= 100.0


@settings(max_examples=40, deadline=None)
@given(soft_label_pairs(), st.lists(st.floats(0.0, 1.0), min_size=2, max_size=6))
def test_wfr_non_increasing_and_wauc_non_decreasing_in_epsilon(pair, epsilons):
    refs, preds = pair
    epsilons = sorted(set(epsilons))
    rates = [w_fr(refs, preds, epsilon=eps) for eps in epsilons]
    assert all(a >= b for a, b in itertools.pairwise(rates))
    positive = [eps for eps in epsilons if eps > 0]
    areas = [w_auc(refs, preds, epsilon=eps) for eps in positive]
    assert all(a <= b + 1e-12 for a, b in itertools.pairwise(areas))


@settings(max_examples=30, deadline=None)
@given(soft_label_pairs(), st.permutations(range(8)))
def test_consistent_column_permutation_without_ties(pair, permutation):
    refs, preds = pair
    # make every reference row tie-free: add a distinct tiny offset per column
    refs = np.clip(refs * 0.9 + np.arange(8) * 1e-3, 0, 1)
    permutation = list(permutation)
    np.testing.assert_allclose(
        weighted_errors(refs, preds), weighted_errors(refs[:, permutation], preds[:, permutation]), rtol=1e-12
    )


def test_random_data_many_rows_and_block_boundaries(monkeypatch):
    rng = np.random.default_rng(0)
    refs = rng.random((2000, 8))
    refs[::3, 2:5] = 0.25  # ties
    preds = rng.random((2000, 8))
    full = weighted_errors(refs, preds, ties="average")
    monkeypatch.setattr(functional, "_BLOCK_ROWS", 7)  # many blocks, a partial last one
    np.testing.assert_array_equal(weighted_errors(refs, preds, ties="average"), full)
    loop = [weighted_error_single(r, p, ties="average") for r, p in zip(refs[:300], preds[:300])]
    np.testing.assert_allclose(full[:300], loop, rtol=1e-12)


def test_float32_fast_path_agrees_with_float64():
    rng = np.random.default_rng(1)
    refs, preds = rng.random((500, 8), dtype=np.float32), rng.random((500, 8), dtype=np.float32)
    e32 = weighted_errors(refs, preds)
    assert e32.dtype == np.float32
    np.testing.assert_allclose(e32, weighted_errors(refs.astype(np.float64), preds.astype(np.float64)), rtol=1e-5)
    assert w_mae(refs, preds) == pytest.approx(w_mae(refs.astype(float), preds.astype(float)), rel=1e-6)


def test_wauc_equals_ced_auc_of_errors():
    rng = np.random.default_rng(2)
    refs, preds = rng.random((300, 8)), rng.random((300, 8)) * 0.5
    errors = weighted_errors(refs, preds)
    assert w_auc(refs, preds, epsilon=0.2) == pytest.approx(ced_auc(errors, 0.2))
    assert w_fr(refs, preds, epsilon=0.2) == pytest.approx(failure_rate(errors, 0.2))
    assert w_mae(refs, preds) == pytest.approx(mean_error(errors))


def test_n_classes_parameter():
    refs = [[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]]
    preds = [[0.6, 0.3, 0.1], [0.1, 0.1, 0.8]]
    # sample 1: |d| = [0.1, 0.1, 0]; weights 1, 1/2, 1/3 -> 0.15 / (11/6); sample 2: 0
    assert weighted_errors(refs, preds, n_classes=3)[0] == pytest.approx(0.15 / (11 / 6))
    assert weighted_errors(refs, preds, n_classes=3)[1] == 0.0
    with pytest.raises(ValueError, match="8 columns"):
        weighted_errors(refs, preds)


# --------------------------------------------------------------------------------------------------
# groupings and tables
# --------------------------------------------------------------------------------------------------
def test_by_groups_equal_separate_computation_and_are_ordered():
    rng = np.random.default_rng(3)
    refs, preds = rng.random((90, 8)), rng.random((90, 8))
    subsets = np.array(["difficult", "easy", "challenging"])[rng.integers(0, 3, 90)]
    for metric in (w_mae, w_fr, w_auc):
        grouped = metric(refs, preds, by=subsets)
        assert list(grouped) == ["easy", "challenging", "difficult"]  # subset order, not alphabetical
        for group, value in grouped.items():
            mask = subsets == group
            assert value == pytest.approx(metric(refs[mask], preds[mask]))
    emotions = [EMOTIONS[i] for i in rng.integers(0, 8, 90)]
    table = soft_label_metrics(refs, preds, by=emotions, include_all=True)
    present = [e for e in EMOTIONS if e in emotions]
    assert list(table) == ["all", *present]  # label-space order
    assert sum(row["n"] for group, row in table.items() if group != "all") == 90
    fear = np.array(emotions) == "Fear"
    assert table["Fear"]["w_mae"] == pytest.approx(w_mae(refs[fear], preds[fear]))
    assert table["all"] == soft_label_metrics(refs, preds)


def test_by_integer_keys_are_plain_python_ints():
    grouped = w_mae(REFS, PREDS, by=np.array([2, 0, 2]))
    assert list(grouped) == [0, 2] and all(type(k) is int for k in grouped)
    json.dumps(grouped)


def test_metric_table_writers():
    table = MetricTable({"easy": {"n": 2, "w_mae": 15.4321}, "difficult": {"n": 1, "w_mae": 21.2}})
    assert table.to_markdown(group_header="subset") == (
        "| subset | n | w_mae |\n|---|---|---|\n| easy | 2 | 15.43 |\n| difficult | 1 | 21.20 |\n"
    )
    assert json.loads(table.to_json()) == {"easy": {"n": 2, "w_mae": 15.4321}, "difficult": {"n": 1, "w_mae": 21.2}}
    assert table.column("w_mae") == {"easy": 15.4321, "difficult": 21.2}


# --------------------------------------------------------------------------------------------------
# hard-label metrics
# --------------------------------------------------------------------------------------------------
HARD_TRUE = [0, 0, 1, 1, 2]
HARD_PRED = [0, 1, 1, 1, 0]
LABELS = ("a", "b", "c")


def test_hard_label_metrics_hand_worked():
    matrix = confusion_matrix(HARD_TRUE, HARD_PRED, labels=LABELS)
    np.testing.assert_array_equal(matrix, [[1, 1, 0], [0, 2, 0], [1, 0, 0]])
    result = hard_label_metrics(HARD_TRUE, HARD_PRED, labels=LABELS)
    assert result["accuracy"] == pytest.approx(60.0)  # 3 of 5
    # recall: a 1/2, b 2/2, c 0/1 -> mean 50
    assert result["average_accuracy"] == pytest.approx(50.0)
    # precision: a 1/2, b 2/3, c 0 (never predicted); F1: a 1/2, b 2*(2/3*1)/(2/3+1) = 0.8, c 0
    per_class = result["per_class"]
    assert per_class["a"] == {"precision": 50.0, "recall": 50.0, "f1": 50.0, "support": 2}
    assert per_class["b"]["precision"] == pytest.approx(200 / 3) and per_class["b"]["f1"] == pytest.approx(80.0)
    assert per_class["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert result["macro_f1"] == pytest.approx((50 + 80 + 0) / 3)
    assert result["confusion_matrix"] == matrix.tolist() and result["labels"] == list(LABELS)
    assert accuracy(HARD_TRUE, HARD_PRED, labels=LABELS) == pytest.approx(60.0)
    assert average_accuracy(HARD_TRUE, HARD_PRED, labels=LABELS) == pytest.approx(50.0)
    assert precision_recall_f1(HARD_TRUE, HARD_PRED, labels=LABELS) == per_class


def test_hard_labels_as_names_or_scores_and_absent_classes():
    names = ["Happy", "Happy", "Sad", "Fear"]
    scores = np.zeros((4, 8))
    scores[[0, 1, 2, 3], [1, 0, 2, 2]] = 1.0  # argmax: Happy, Neutral, Sad, Sad
    result = hard_label_metrics(names, scores)
    assert result["accuracy"] == pytest.approx(50.0)
    # classes present in the references: Happy (recall 1/2), Sad (1/1), Fear (0/1) -> mean 50
    assert result["average_accuracy"] == pytest.approx(50.0)
    assert result["per_class"]["Neutral"]["support"] == 0
    assert confusion_matrix(names, scores).shape == (8, 8)
    assert confusion_matrix(names, scores).sum() == 4


def test_hard_label_metrics_by_group():
    groups = ["x", "x", "y", "y", "y"]
    table = hard_label_metrics(HARD_TRUE, HARD_PRED, labels=LABELS, by=groups, include_all=True)
    assert list(table) == ["all", "x", "y"]
    assert table["x"]["accuracy"] == 50.0 and table["y"]["accuracy"] == pytest.approx(200 / 3)
    assert accuracy(HARD_TRUE, HARD_PRED, labels=LABELS, by=groups) == {"x": 50.0, "y": pytest.approx(200 / 3)}
    assert "accuracy" in table.to_markdown() and "per_class" not in table.to_markdown()


@pytest.mark.parametrize(
    ("references", "predictions", "message"),
    [
        ([0, 1, 8], [0, 1, 2], r"references has class codes outside 0\.\.7 at row 2"),
        ([0, 1, 2], [0, -1, 2], r"predictions has class codes outside 0\.\.7 at row 1"),
        (["Happy", "Joy"], ["Happy", "Sad"], r"references has unknown labels at row 1 .*'Joy'"),
        ([0.0, 1.5], [0, 1], r"references must hold integer class codes.* at row 1"),
        ([0, 1], [0, 1, 2], "same number of samples, got 2 and 3"),
        ([], [], "references is empty"),
        ([[0, 1]], [0], r"references must have shape \(N,\) labels"),
        ([0, 1], np.zeros((2, 5)), r"predictions given as scores must have shape \(N, 8\)"),
    ],
)
def test_hard_label_bad_input(references, predictions, message):
    with pytest.raises(ValueError, match=message):
        hard_label_metrics(references, predictions)


# --------------------------------------------------------------------------------------------------
# bad soft-label input
# --------------------------------------------------------------------------------------------------
GOOD = np.full((3, 8), 0.125)


def with_value(array, index, value):
    array = np.array(array, dtype=np.float64)
    array[index] = value
    return array


@pytest.mark.parametrize(
    ("references", "predictions", "message"),
    [
        (GOOD, GOOD[:2], r"same shape, got references \(3, 8\) and predictions \(2, 8\)"),
        (GOOD[:, :7], GOOD[:, :7], r"references must have 8 columns .* got shape \(3, 7\)"),
        (GOOD, GOOD[:, :7], r"predictions must have 8 columns .* got shape \(3, 7\)"),
        (GOOD[0], GOOD[0], r"references must have shape \(N, 8\) .* got shape \(8,\)"),
        (np.zeros((0, 8)), np.zeros((0, 8)), r"references is empty \(shape \(0, 8\)\)"),
        (with_value(GOOD, (2, 3), np.nan), GOOD, r"references has NaN or infinite values at row 2"),
        (GOOD, with_value(GOOD, (1, 0), np.inf), r"predictions has NaN or infinite values at row 1"),
        (with_value(GOOD, (1, 5), 1.5), GOOD, r"references has values outside \[0, 1\] at row 1 .*clip=True"),
        (GOOD, with_value(GOOD, (0, 0), -0.1), r"predictions has values outside \[0, 1\] at row 0"),
        ([["a"] * 8], [[0.1] * 8], "references must be a numeric array"),
    ],
)
def test_soft_label_bad_input(references, predictions, message):
    with pytest.raises(ValueError, match=message):
        weighted_errors(references, predictions)


def test_nan_reported_even_with_clip_and_many_rows_listed():
    bad = with_value(with_value(GOOD, (0, 0), np.nan), (2, 1), np.nan)
    with pytest.raises(ValueError, match="rows 0, 2"):
        weighted_errors(bad, GOOD, clip=True)


def test_clip_option():
    refs = with_value(GOOD, (0, 0), 1.2)
    preds = with_value(GOOD, (1, 1), -0.3)
    clipped = weighted_errors(refs, preds, clip=True)
    np.testing.assert_array_equal(clipped, weighted_errors(np.clip(refs, 0, 1), np.clip(preds, 0, 1)))
    checked_refs, _ = validate_soft_labels(refs, preds, clip=True)
    assert checked_refs.max() == 1.0


def test_check_soft_labels_one_array():
    good = GOOD.astype(np.float32)
    assert functional.check_soft_labels(good) is good  # valid float32 passes through, uncopied
    assert functional.check_soft_labels(GOOD.tolist()).dtype == np.float64
    with pytest.raises(ValueError, match=r"soft_labels must have shape \(4, 8\) .* got shape \(3, 8\)"):
        functional.check_soft_labels(GOOD, n_rows=4)
    with pytest.raises(ValueError, match=r"labels must have shape \(3, 8\) .* got shape \(3, 7\)"):
        functional.check_soft_labels(GOOD[:, :7], "labels", n_rows=3)
    bad = with_value(with_value(GOOD, (1, 0), 1.5), (2, 0), 2.0)
    with pytest.raises(
        ValueError,
        match=r"soft_labels has values outside \[0, 1\] at rows 1, 2 "
        r"\(row 1, image 'b': \[1\.5, .*clip=True",
    ):
        functional.check_soft_labels(bad, row_names=["a", "b", "c"])
    with pytest.raises(ValueError, match=r"expected soft-label scores in \[0, 1\]$"):
        functional.check_soft_labels(bad, clip_hint=False)
    assert functional.check_soft_labels(bad, clip=True).max() == 1.0
    with pytest.raises(ValueError, match="NaN or infinite values at row 0"):
        functional.check_soft_labels(with_value(GOOD, (0, 3), np.inf), clip=True)
    with pytest.raises(ValueError, match="n_classes must be a positive integer"):
        functional.check_soft_labels(GOOD, n_classes=True)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"ties": "dense"}, r"ties must be one of \('ordinal', 'average'\), got 'dense'"),
        ({"ties": None}, "ties must be one of"),
        ({"normalize": "yes"}, "normalize must be True or False, got 'yes'"),
        ({"normalize": 1}, "normalize must be True or False, got 1"),
        ({"clip": None}, "clip must be True or False"),
        ({"n_classes": 0}, "n_classes must be a positive integer"),
    ],
)
def test_bad_options(kwargs, message):
    with pytest.raises(ValueError, match=message):
        weighted_errors(GOOD, GOOD, **kwargs)


@pytest.mark.parametrize("epsilon", [-0.1, float("nan"), float("inf"), "0.3", True, None])
def test_bad_epsilon(epsilon):
    for metric in (w_fr, w_auc, soft_label_metrics):
        with pytest.raises(ValueError, match="epsilon must be"):
            metric(GOOD, GOOD, epsilon=epsilon)


def test_zero_epsilon_allowed_for_wfr_only():
    assert w_fr(GOOD, GOOD, epsilon=0) == 0.0  # identical -> e = 0, not > 0
    with pytest.raises(ValueError, match="epsilon must be a finite number > 0"):
        w_auc(GOOD, GOOD, epsilon=0)
    assert DEFAULT_EPSILON == 0.3


@pytest.mark.parametrize(
    ("by", "message"),
    [
        (["a", "b"], r"by must hold one group key per sample: expected shape \(3,\), got \(2,\)"),
        (["a", None, "b"], r"by has missing group keys \(None/NaN\) at row 1"),
        ([1.0, 2.0, float("nan")], r"by has missing group keys \(None/NaN\) at row 2"),
        ([["a"], ["b"], ["c"]], r"by must hold one group key per sample"),
    ],
)
def test_bad_by(by, message):
    with pytest.raises(ValueError, match=message):
        w_mae(GOOD, GOOD, by=by)


def test_bad_precomputed_errors():
    with pytest.raises(ValueError, match="errors must be a non-empty 1-D array"):
        mean_error([])
    with pytest.raises(ValueError, match="errors has NaN or infinite values at row 1"):
        failure_rate([0.1, np.nan])
    with pytest.raises(ValueError, match="errors must be >= 0"):
        ced_auc([-0.1])


# --------------------------------------------------------------------------------------------------
# `affectnetplus metrics compute`
# --------------------------------------------------------------------------------------------------
def _tables(tmp_path, n=12, seed=5):
    import pandas as pd

    rng = np.random.default_rng(seed)
    refs, preds = rng.random((n, 8)), rng.random((n, 8))
    ids = [f"images/{i:03d}.jpg" for i in range(n)]
    subsets = np.array(["easy", "challenging", "difficult"])[np.arange(n) % 3]
    reference_frame = pd.DataFrame(refs, columns=EMOTIONS)
    reference_frame.insert(0, "image_id", ids)
    reference_frame["subset"] = subsets
    prediction_frame = pd.DataFrame(preds, columns=[e.lower() for e in EMOTIONS])  # case-insensitive columns
    prediction_frame.insert(0, "image_id", ids)
    return refs, preds, subsets, reference_frame, prediction_frame


def _run_compute(capsys, *argv):
    from affectnetplus_hf import cli

    code = cli.main(["metrics", "compute", *map(str, argv)])
    return code, capsys.readouterr().out


def test_cli_compute_matches_by_image_id(tmp_path, capsys):
    refs, preds, subsets, reference_frame, prediction_frame = _tables(tmp_path)
    reference_frame.to_csv(tmp_path / "gt.csv", index=False)
    prediction_frame.iloc[::-1].to_parquet(tmp_path / "pred.parquet")  # other row order
    code, out = _run_compute(
        capsys,
        "-r",
        tmp_path / "gt.csv",
        "-p",
        tmp_path / "pred.parquet",
        "--by",
        "subset",
        "-o",
        tmp_path / "out" / "metrics.json",
    )
    assert code == 0
    result = json.loads(out)
    assert result["matched_by"] == "image_id" and result["n"] == 12
    expected = soft_label_metrics(refs, preds)
    for key in ("w_mae", "w_fr", "w_auc"):
        assert result["metrics"][key] == pytest.approx(expected[key], rel=1e-9)
    assert list(result["by"]["subset"]) == ["easy", "challenging", "difficult"]
    easy = subsets == "easy"
    assert result["by"]["subset"]["easy"]["w_mae"] == pytest.approx(w_mae(refs[easy], preds[easy]), rel=1e-9)
    assert json.loads((tmp_path / "out" / "metrics.json").read_text()) == result


def test_cli_compute_by_position_and_options(tmp_path, capsys):
    refs, preds, _, reference_frame, prediction_frame = _tables(tmp_path)
    reference_frame.drop(columns="image_id").to_json(tmp_path / "gt.jsonl", orient="records", lines=True)
    prediction_frame.drop(columns="image_id").to_csv(tmp_path / "pred.csv", index=False)
    code, out = _run_compute(
        capsys,
        "-r",
        tmp_path / "gt.jsonl",
        "-p",
        tmp_path / "pred.csv",
        "--no-normalize",
        "--ties",
        "average",
        "--epsilon",
        "0.1",
    )
    assert code == 0
    result = json.loads(out)
    assert result["matched_by"] == "position"
    assert result["options"] == {"epsilon": 0.1, "normalize": False, "ties": "average", "clip": False}
    assert result["metrics"]["w_fr"] == pytest.approx(w_fr(refs, preds, epsilon=0.1, normalize=False, ties="average"))
    prediction_frame.drop(columns="image_id").iloc[:-1].to_csv(tmp_path / "short.csv", index=False)
    code, _ = _run_compute(capsys, "-r", tmp_path / "gt.jsonl", "-p", tmp_path / "short.csv")
    assert code == 1


@pytest.mark.parametrize(
    ("mutate", "extra_args", "message"),
    [
        (lambda r, p: (r, p.iloc[1:]), [], "no prediction for 1 of the 12 reference images"),
        (lambda r, p: (r.iloc[1:], p), [], "1 prediction row.* not in"),
        (lambda r, p: (r.drop(columns="Fear"), p), [], r"missing emotion columns \['Fear'\]"),
        (
            lambda r, p: (r.assign(Sad=["x"] + [0.1] * 11), p),
            [],
            r"column 'Sad' has 1 missing or non-numeric value\(s\), first at row 0 \(image_id='images/000.jpg'\)",
        ),
        (lambda r, p: (r, p), ["--by", "gender"], "--by column 'gender' is in neither"),
        (lambda r, p: (r.assign(image_id=["dup"] * 12), p), [], "duplicated 'image_id'"),
    ],
)
def test_cli_compute_bad_input(tmp_path, capsys, caplog, mutate, extra_args, message):
    _, _, _, reference_frame, prediction_frame = _tables(tmp_path)
    reference_frame, prediction_frame = mutate(reference_frame, prediction_frame)
    reference_frame.to_csv(tmp_path / "gt.csv", index=False)
    prediction_frame.to_csv(tmp_path / "pred.csv", index=False)
    code, _ = _run_compute(capsys, "-r", tmp_path / "gt.csv", "-p", tmp_path / "pred.csv", *extra_args)
    assert code == 1
    assert any(re.search(message, record.getMessage()) for record in caplog.records), caplog.text


def test_cli_compute_extra_predictions_can_be_ignored(tmp_path, capsys):
    refs, preds, _, reference_frame, prediction_frame = _tables(tmp_path)
    reference_frame.iloc[2:].to_csv(tmp_path / "gt.csv", index=False)
    prediction_frame.to_csv(tmp_path / "pred.csv", index=False)
    code, out = _run_compute(
        capsys, "-r", tmp_path / "gt.csv", "-p", tmp_path / "pred.csv", "--ignore-extra-predictions"
    )
    assert code == 0
    result = json.loads(out)
    assert result["n"] == 10 and result["n_extra_predictions_ignored"] == 2
    assert result["metrics"]["w_mae"] == pytest.approx(w_mae(refs[2:], preds[2:]), rel=1e-9)


def test_cli_compute_missing_or_unsupported_file(tmp_path, capsys):
    (tmp_path / "gt.xlsx").write_text("x")
    assert _run_compute(capsys, "-r", tmp_path / "nope.csv", "-p", tmp_path / "nope.csv")[0] == 1
    assert _run_compute(capsys, "-r", tmp_path / "gt.xlsx", "-p", tmp_path / "gt.xlsx")[0] == 1
