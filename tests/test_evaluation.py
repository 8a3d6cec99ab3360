"""Evaluation tables: numbers agree with the metric functions; files and figures are written."""

import json

import numpy as np
import pytest

from affectnetplus_hf import evaluation
from affectnetplus_hf.metrics import functional as metric_functions


def _data(n=40, seed=0, with_truth=True):
    rng = np.random.default_rng(seed)
    soft = rng.random((n, 8)).astype(np.float32)
    hard = rng.integers(0, 8, n)
    subsets = np.array(["easy", "challenging", "difficult"])[rng.integers(0, 3, n)]
    truth = rng.dirichlet(np.ones(8), n).astype(np.float32) if with_truth else None
    return evaluation.EvaluationData(hard, soft, subsets, truth)


@pytest.mark.slow
def test_evaluate_predictions_tables_match_functions(tmp_path):
    data = _data()
    rng = np.random.default_rng(1)
    soft_scores = rng.random((40, 8)).astype(np.float32)
    hard_scores = rng.random((40, 8)).astype(np.float32)
    models = [
        evaluation.ModelPredictions("hard_all", "hard", hard_scores),
        evaluation.ModelPredictions("soft_all", "soft", soft_scores),
        evaluation.ModelPredictions("soft_easy", "soft", soft_scores, trained_on="easy"),
    ]
    results = evaluation.evaluate_predictions(data, models, tmp_path)
    easy = data.subsets == "easy"
    assert results["models"]["hard_all"]["hard"]["easy"]["accuracy"] == pytest.approx(
        metric_functions.accuracy(data.hard_labels[easy], hard_scores[easy].argmax(1))
    )
    assert results["models"]["soft_all"]["soft"]["all"]["w_mae"] == pytest.approx(
        metric_functions.w_mae(data.soft_labels, soft_scores), rel=1e-5
    )
    difficult = data.subsets == "difficult"
    assert results["models"]["soft_all"]["soft"]["difficult"]["w_fr"] == pytest.approx(
        metric_functions.w_fr(data.soft_labels[difficult], soft_scores[difficult]), rel=1e-5
    )
    by_emotion = results["models"]["soft_all"]["soft_by_emotion"]["w_auc"]
    names = [evaluation.EMOTIONS[h] for h in data.hard_labels]
    assert by_emotion == pytest.approx(metric_functions.w_auc(data.soft_labels, soft_scores, by=names), rel=1e-5)
    truth = results["synthetic_ground_truth"]
    assert truth["soft_labels_vs_truth"]["w_mae"] == pytest.approx(
        metric_functions.w_mae(data.true_soft_labels, data.soft_labels), rel=1e-5
    )
    assert "AffectNet+ soft labels" in evaluation.ground_truth_markdown(results)
    saved = json.loads((tmp_path / "tables" / "evaluation.json").read_text())
    assert saved["n_images"] == 40
    assert "| hard_all | hard | all | easy |" in (tmp_path / "tables" / "hard_label_metrics.md").read_text()
    # confusion matrices only for models trained on all; CED for each soft model
    figures = sorted(p.name for p in (tmp_path / "figures").iterdir())
    assert "confusion_hard_all_all.png" in figures and "ced_soft_easy.png" in figures
    assert not any(name.startswith("confusion_soft_easy") for name in figures)


def test_bad_inputs(tmp_path):
    with pytest.raises(ValueError, match=r"soft_labels must have shape \(3, 8\)"):
        evaluation.EvaluationData([0, 1, 2], np.zeros((3, 7)), ["easy"] * 3)
    with pytest.raises(ValueError, match="subsets must be among"):
        evaluation.EvaluationData([0], np.zeros((1, 8)), ["medium"])
    with pytest.raises(ValueError, match="empty"):
        evaluation.EvaluationData([], np.zeros((0, 8)), [])
    with pytest.raises(ValueError, match="kind must be"):
        evaluation.ModelPredictions("m", "fuzzy", np.zeros((1, 8)))
    data = _data(n=5, with_truth=False)
    with pytest.raises(ValueError, match=r"model 'm': scores must have shape \(5, 8\)"):
        evaluation.evaluate_predictions(data, [evaluation.ModelPredictions("m", "soft", np.zeros((4, 8)))], tmp_path)
    with pytest.raises(ValueError, match="epsilon must be a finite number"):  # checked before anything is written
        evaluation.evaluate_predictions(
            data, [evaluation.ModelPredictions("m", "hard", np.zeros((5, 8)))], tmp_path, epsilon=-1.0
        )
    assert not any(tmp_path.iterdir())


def test_soft_labels_must_be_finite_probabilities_and_the_image_is_named():
    soft = np.full((3, 8), 0.1, dtype=np.float32)
    soft[1, 2] = np.nan
    with pytest.raises(ValueError, match=r"soft_labels has NaN or infinite values at row 1 \(row 1, image 'b': "):
        evaluation.EvaluationData([0, 1, 2], soft, ["easy"] * 3, image_ids=["a", "b", "c"])
    soft[1, 2] = 1.5
    with pytest.raises(ValueError, match=r"soft_labels has values outside \[0, 1\] at row 1 \(row 1: ") as refused:
        evaluation.EvaluationData([0, 1, 2], soft, ["easy"] * 3)
    assert "clip=True" not in str(refused.value)  # the class has no such option
    truth = np.full((3, 8), 0.1, dtype=np.float32)
    truth[2, 0] = -0.5
    with pytest.raises(ValueError, match=r"true_soft_labels has values outside \[0, 1\] at row 2 \(row 2, image 'c'"):
        evaluation.EvaluationData([0, 1, 2], np.zeros((3, 8)), ["easy"] * 3, truth, image_ids=["a", "b", "c"])
    with pytest.raises(ValueError, match=r"true_soft_labels must have shape \(3, 8\)"):
        evaluation.EvaluationData([0, 1, 2], np.zeros((3, 8)), ["easy"] * 3, np.zeros((2, 8)))
    with pytest.raises(ValueError, match="image_ids must have 3 entries"):
        evaluation.EvaluationData([0, 1, 2], np.zeros((3, 8)), ["easy"] * 3, image_ids=["a"])


@pytest.mark.slow
def test_soft_metrics_are_the_evaluate_modules_numbers():
    """One pass over the errors gives exactly what the three ``evaluate`` modules return (their float32
    inputs, their reductions), overall and per group."""
    import evaluate

    from affectnetplus_hf.metrics import module_path

    rng = np.random.default_rng(4)
    references = rng.dirichlet(np.ones(8), 60)  # float64, as the baselines' vote distributions
    predictions = rng.random((60, 8)).astype(np.float32)
    groups = np.array(["easy", "challenging", "difficult"])[rng.integers(0, 3, 60)].tolist()
    expected = {}
    for name in ("w_mae", "w_fr", "w_auc"):
        module = evaluate.load(module_path(name), epsilon=0.25)
        expected.update(module.compute(references=references, predictions=predictions, by=groups))
    assert evaluation.soft_metrics(references, predictions, by=groups, epsilon=0.25) == expected
    assert list(evaluation.soft_metrics(references, predictions, by=groups, epsilon=0.25)) == list(expected)
    assert evaluation.soft_metrics(references, predictions) == {
        "w_mae": metric_functions.w_mae(references.astype(np.float32), predictions),
        "w_fr": metric_functions.w_fr(references.astype(np.float32), predictions),
        "w_auc": metric_functions.w_auc(references.astype(np.float32), predictions),
    }
