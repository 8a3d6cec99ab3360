"""Hand-worked examples for Eqs. 3–14 (docs/method.md#confidence-scores to #subsets; the arithmetic is
written out) and vectorised-vs-loop checks."""

import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from affectnetplus_hf import ACTION_UNITS, EMOTIONS, softlabel


def test_confidence_score_balanced_and_eq3_by_hand():
    # 4 positives, 6 negatives. Predictions: TP=3, FN=1, TN=4, FP=2.
    y = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0, 0])
    p = np.array([0.9, 0.6, 0.5, 0.2, 0.1, 0.3, 0.4, 0.2, 0.7, 0.55])
    # balanced: ½ (3/4 + 4/6) = ½ (0.75 + 0.6667) = 0.708333
    assert softlabel.confidence_score(y, p) == pytest.approx(0.5 * (3 / 4 + 4 / 6))
    # eq3: ½ (TP/(TP+FP) + TN/(TN+FN)) = ½ (3/5 + 4/5) = 0.7
    assert softlabel.confidence_score(y, p, mode="eq3") == pytest.approx(0.7)
    # threshold 0.6: TP=2 (0.9, 0.6), TN=5 -> ½ (2/4 + 5/6)
    assert softlabel.confidence_score(y, p, threshold=0.6) == pytest.approx(0.5 * (2 / 4 + 5 / 6))


def test_confidence_score_columns_and_zero_denominator_warns():
    y = np.array([[1, 0], [0, 0], [1, 0]])
    p = np.array([[0.9, 0.1], [0.2, 0.2], [0.1, 0.3]])
    with pytest.warns(UserWarning, match="zero denominator"):
        scores = softlabel.confidence_score(y, p)
    # column 0: TP=1, FN=1, TN=1, FP=0 -> ½(1/2 + 1) = 0.75; column 1: no positives -> ½(0 + 3/3) = 0.5
    np.testing.assert_allclose(scores, [0.75, 0.5])


def test_confidence_score_bad_input():
    with pytest.raises(ValueError, match="y_true has shape"):
        softlabel.confidence_score([1, 0], [0.5])
    with pytest.raises(ValueError, match="y_true must be 0 or 1"):
        softlabel.confidence_score([2, 0], [0.5, 0.5])
    with pytest.raises(ValueError, match=r"non-finite value .* index \(1,\)"):
        softlabel.confidence_score([1, 0], [0.5, np.nan])
    with pytest.raises(ValueError, match="mode"):
        softlabel.confidence_score([1, 0], [0.5, 0.5], mode="f1")
    with pytest.raises(ValueError, match="empty"):
        softlabel.confidence_score([], [])


def test_ebc_semantic_scores_by_hand():
    # J = 2 backbones, N = 1 image. SC_EB(i) = Σ_j (1/J) CS_j(i) P_j(i)
    probs = np.zeros((2, 1, 8))
    probs[0, 0, 1], probs[1, 0, 1] = 0.8, 0.6  # Happy
    probs[0, 0, 7], probs[1, 0, 7] = 0.5, 0.0  # Contempt
    cs = np.full((2, 8), 0.9)
    cs[1, 1] = 0.7
    scores = softlabel.ebc_semantic_scores(probs, cs)
    assert scores.shape == (1, 8)
    assert scores[0, 1] == pytest.approx((0.9 * 0.8 + 0.7 * 0.6) / 2)  # = 0.57
    assert scores[0, 7] == pytest.approx((0.9 * 0.5 + 0.9 * 0.0) / 2)  # = 0.225
    assert scores[0, 0] == 0


def test_ebc_bad_shapes():
    with pytest.raises(ValueError, match="confidences has 3 backbones"):
        softlabel.ebc_semantic_scores(np.zeros((2, 4, 8)), np.zeros((3, 8)))
    with pytest.raises(ValueError, match="8 entries in its last axis"):
        softlabel.ebc_semantic_scores(np.zeros((2, 4, 7)), np.zeros((2, 7)))
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
        softlabel.ebc_semantic_scores(np.full((1, 1, 8), 1.5), np.ones((1, 8)))


def test_au_positive_probability_by_hand():
    # ÂU = 1 on AU6, AU12, AU25 (Happy's AUs), 0 elsewhere; derived AUS.
    au = np.zeros((1, 21))
    for a in (6, 12, 25):
        au[0, ACTION_UNITS.index(a)] = 1.0
    sv = softlabel.au_similarity_vector(au)
    # SV_Happy = AUS6 + AUS12 + AUS25 = 1/2 + 1/2 + 1/4 = 1.25
    # SV_Sad = AUS6 = 0.5; SV_Surprise = 0; SV_Fear = AUS25 = 0.25; SV_Disgust = 0.25; SV_Anger = 0.25;
    # SV_Contempt = AUS12 = 0.5; SV_Neutral = 0.25 (hyper-parameter)
    np.testing.assert_allclose(sv[0], [0.25, 1.25, 0.5, 0.0, 0.25, 0.25, 0.25, 0.5])
    # BSV = [1.25, (0.25 + 0.5 + 0 + 0.25 + 0.25 + 0.25 + 0.5) / 7] = [1.25, 2/7]
    apv0 = math.exp(1.25) / (math.exp(1.25) + math.exp(2 / 7))
    p = softlabel.au_positive_probability("Happy", np.array([0.8]), au)
    assert p[0] == pytest.approx(0.5 * (0.8 + apv0))  # ≈ 0.7620
    assert p[0] == pytest.approx(0.76198, abs=1e-4)
    # Same by index, and the paper's printed AUS gives the same here (AU26/27 not involved).
    assert softlabel.au_positive_probability(1, [0.8], au)[0] == pytest.approx(p[0])
    assert softlabel.au_positive_probability(1, [0.8], au, aus="paper")[0] == pytest.approx(
        0.5 * (0.8 + 1 / (1 + math.exp((0.25 + 0.5 + 0 + 0.25 + 0.25 + 0.25 + 0.5) / 7 - (0.5 + 0.5 + 0.25))))
    )


def test_au_positive_probability_neutral_uses_hyperparameter():
    au = np.zeros((1, 21))
    # all SV = 0 except Neutral = 0.25: BSV = [0.25, 0] -> APV0 = σ(0.25)
    p = softlabel.au_positive_probability("Neutral", [0.4], au)
    assert p[0] == pytest.approx(0.5 * (0.4 + 1 / (1 + math.exp(-0.25))))
    p2 = softlabel.au_positive_probability("Neutral", [0.4], au, neutral_similarity=0.0)
    assert p2[0] == pytest.approx(0.5 * (0.4 + 0.5))


def test_au_positive_probability_bad_input():
    with pytest.raises(ValueError, match="21 entries"):
        softlabel.au_positive_probability(1, [0.5], np.zeros((1, 20)))
    with pytest.raises(ValueError, match="binary_probs has 2 rows but au_probs has 1"):
        softlabel.au_positive_probability(1, [0.5, 0.5], np.zeros((1, 21)))
    with pytest.raises(ValueError, match="emotion must be"):
        softlabel.au_positive_probability(8, [0.5], np.zeros((1, 21)))


def loop_au_positive_probability(emotion, binary_prob, au_row, aus):
    """Plain per-sample reference for Eqs. 9–12."""
    vectors = {
        e: [1.0 if a in au_set else 0.0 for a in ACTION_UNITS]
        for e, au_set in __import__("affectnetplus_hf").EMOTION_AUS.items()
    }
    sv = []
    for name in EMOTIONS:
        if name == "Neutral":
            sv.append(0.25)
        else:
            sv.append(sum(aus[a] * vectors[name][a] * au_row[a] for a in range(21)))
    own = sv[emotion]
    others = sum(sv[e] for e in range(8) if e != emotion) / 7
    apv = math.exp(own) / (math.exp(own) + math.exp(others))
    return 0.5 * (binary_prob + apv)


@settings(max_examples=30, deadline=None)
@given(
    arrays(np.float64, (5, 21), elements=st.floats(0, 1)),
    arrays(np.float64, (5,), elements=st.floats(0, 1)),
    st.integers(0, 7),
)
def test_au_positive_probability_matches_loop(au, binary, emotion):
    aus = softlabel.aus_weights("table2")
    vectorised = softlabel.au_positive_probability(emotion, binary, au)
    loop = [loop_au_positive_probability(emotion, binary[k], au[k], aus) for k in range(5)]
    np.testing.assert_allclose(vectorised, loop, rtol=1e-12)


def test_soft_labels_eq14_and_single_family():
    ebc = np.array([[0.2, 0.8, 0, 0, 0, 0, 0, 0.4]])
    au = np.array([[0.4, 0.6, 0, 0, 0, 0, 0, 0.0]])
    # sl = ½ (SC_EB + SC_AU)
    np.testing.assert_allclose(softlabel.soft_labels(ebc, au), [[0.3, 0.7, 0, 0, 0, 0, 0, 0.2]])
    np.testing.assert_allclose(softlabel.soft_labels(ebc_scores=ebc), ebc)  # no halving
    np.testing.assert_allclose(softlabel.soft_labels(au_scores=au), au)
    with pytest.raises(ValueError, match="got neither"):
        softlabel.soft_labels()
    with pytest.raises(ValueError, match="expected equal"):
        softlabel.soft_labels(ebc, np.zeros((2, 8)))


def test_au_semantic_scores():
    p = np.full((2, 8), 0.5)
    cs = np.linspace(0.6, 0.95, 8)
    np.testing.assert_allclose(softlabel.au_semantic_scores(p, cs), 0.5 * cs[None, :].repeat(2, 0))
    with pytest.raises(ValueError, match="confidences must have 8 entries"):
        softlabel.au_semantic_scores(p, np.ones(7))


def test_subsets_by_hand_with_ties_favouring_hard_label():
    sl = np.array(
        [
            [0.1, 0.9, 0.2, 0, 0, 0, 0, 0.3],  # hard Happy: rank 1 -> easy
            [0.1, 0.9, 0.2, 0, 0, 0, 0, 0.3],  # hard Contempt: only Happy above -> rank 2 -> challenging
            [0.1, 0.9, 0.2, 0, 0, 0, 0, 0.3],  # hard Neutral: Happy, Sad, Contempt above -> rank 4 -> difficult
            [0.5, 0.5, 0.5, 0.5, 0, 0, 0, 0],  # hard Surprise tied with 3 others -> rank 1 -> easy
            [0.1, 0.9, 0.3, 0, 0, 0, 0, 0.3],  # hard Sad: Happy above, Contempt tied -> rank 2
            [0.1, 0.9, 0.8, 0, 0, 0, 0, 0.3],  # hard Contempt: Happy, Sad above -> rank 3 -> challenging
        ]
    )
    hard = np.array([1, 7, 0, 3, 2, 7])
    np.testing.assert_array_equal(softlabel.hard_label_ranks(sl, hard), [1, 2, 4, 1, 2, 3])
    assert softlabel.assign_subsets(sl, hard).tolist() == [
        "easy",
        "challenging",
        "difficult",
        "easy",
        "challenging",
        "challenging",
    ]


def test_subsets_bad_input():
    sl = np.zeros((2, 8))
    with pytest.raises(ValueError, match="hard_labels has 3 entries but soft_labels has 2"):
        softlabel.assign_subsets(sl, np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="found 9 at index 1"):
        softlabel.assign_subsets(sl, np.array([0, 9]))
    with pytest.raises(ValueError, match="integers"):
        softlabel.assign_subsets(sl, np.array([0.0, 1.0]))


@settings(max_examples=30, deadline=None)
@given(arrays(np.float64, (6, 8), elements=st.floats(0, 1)), arrays(np.int64, (6,), elements=st.integers(0, 7)))
def test_subset_ranks_match_loop(sl, hard):
    ranks = softlabel.hard_label_ranks(sl, hard)
    for k in range(6):
        assert ranks[k] == 1 + sum(1 for e in range(8) if sl[k, e] > sl[k, hard[k]])


def test_no_warning_on_clean_confidence():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        softlabel.confidence_score([1, 0], [0.9, 0.1])
