"""The label space and AU tables (docs/method.md#label-space, #action-units) and their two documented
differences from the printed paper."""

import numpy as np
import pytest

import affectnetplus_hf as anp
from affectnetplus_hf import emotions, paper


def test_label_space_order():
    assert anp.EMOTIONS == ("Neutral", "Happy", "Sad", "Surprise", "Fear", "Disgust", "Anger", "Contempt")
    assert len(anp.ACTION_UNITS) == 21


def test_au_vectors_follow_table2():
    vectors = anp.au_vectors()
    assert vectors.shape == (8, 21)
    assert vectors[0].sum() == 0  # Neutral has no AU
    happy = [anp.ACTION_UNITS[i] for i in np.flatnonzero(vectors[1])]
    assert happy == [6, 12, 25]
    assert vectors.sum(axis=1).tolist() == [0, 3, 6, 5, 8, 6, 10, 2]


def test_derived_aus_matches_printed_eq8_except_au26_au27():
    derived = anp.aus_weights("table2")
    printed = anp.aus_weights("paper")
    # AU25 is used by Happy, Fear, Disgust, Anger -> 1/4; AU14 only by Contempt -> 1.
    assert derived[anp.ACTION_UNITS.index(25)] == pytest.approx(1 / 4)
    assert derived[anp.ACTION_UNITS.index(14)] == pytest.approx(1.0)
    # AU26: Surprise, Fear, Anger -> 1/3 (printed 0.25); AU27: Surprise, Fear, Disgust -> 1/3 (printed 0.5).
    assert derived[anp.ACTION_UNITS.index(26)] == pytest.approx(1 / 3)
    assert printed[anp.ACTION_UNITS.index(26)] == pytest.approx(0.25)
    assert derived[anp.ACTION_UNITS.index(27)] == pytest.approx(1 / 3)
    assert printed[anp.ACTION_UNITS.index(27)] == pytest.approx(0.5)
    differs = [anp.ACTION_UNITS[i] for i in np.flatnonzero(np.abs(derived - printed) > 0.01)]
    assert differs == [26, 27]


def test_overlap_derived_vs_printed_disgust_anger():
    derived = anp.au_overlap("table2")
    printed = anp.au_overlap("paper")
    d, a = anp.EMOTIONS.index("Disgust"), anp.EMOTIONS.index("Anger")
    assert derived[d, a] == derived[a, d] == 3  # AUs 10, 17, 25
    assert printed[d, a] == printed[a, d] == 4
    assert (derived - printed != 0).sum() == 2
    assert derived[0].sum() == 0  # Neutral shares nothing
    assert (derived == derived.T).all()
    h, c = anp.EMOTIONS.index("Happy"), anp.EMOTIONS.index("Contempt")
    assert derived[h, c] == 1  # AU12


def test_unknown_source_rejected():
    with pytest.raises(ValueError, match="aus must be 'table2' or 'paper'"):
        anp.aus_weights("printed")
    with pytest.raises(ValueError, match="overlap"):
        anp.au_overlap("x")


def test_affectnet_codes():
    assert [anp.affectnet_code_to_index(c) for c in range(11)] == [0, 1, 2, 3, 4, 5, 6, 7, None, None, None]
    with pytest.raises(ValueError, match="0..10, got 12"):
        anp.affectnet_code_to_index(12)


def test_ferplus_reorder():
    # FER+ order: neutral, happiness, surprise, sadness, anger, disgust, fear, contempt
    ferplus = np.array([4, 0, 1, 2, 3, 5, 6, 7])
    spec = anp.ferplus_votes_to_spec(ferplus)
    assert dict(zip(anp.EMOTIONS, spec.tolist())) == {
        "Neutral": 4,
        "Happy": 0,
        "Sad": 2,
        "Surprise": 1,
        "Fear": 6,
        "Disgust": 5,
        "Anger": 3,
        "Contempt": 7,
    }
    with pytest.raises(ValueError, match="8 emotion columns"):
        anp.ferplus_votes_to_spec(np.zeros(10))


def test_paper_cs_table_covers_every_emotion():
    assert set(paper.PAPER_TABLE4_CS) == set(anp.EMOTIONS)


def test_paper_figures_have_one_home():
    for name in (
        "NEUTRAL_SIMILARITY",
        "PAPER_AU_BACKBONE",
        "PAPER_EBC_BACKBONES",
        "PAPER_HPARAMS",
        "PAPER_TABLE4_CS",
        "PAPER_TABLE5_TRAIN_SUBSETS",
        "PAPER_TABLE8_HARD_FER_ACC",
        "PAPER_TABLE10_SOFT_FER",
        "PAPER_W_EPSILON",
    ):
        assert hasattr(paper, name) and not hasattr(emotions, name)
