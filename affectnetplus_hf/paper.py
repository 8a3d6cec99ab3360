"""The AffectNet+ paper's hyper-parameters and the figures it reports (``docs/method.md#baselines``,
``docs/method.md#reference-figures``).

The label space and the action-unit tables live in :mod:`affectnetplus_hf.emotions`; this module holds
the numbers the paper trains with and the results it prints, which presets, model cards and benchmarks
compare against. Percentages are as printed.
"""

from __future__ import annotations

#: Backbones of the paper (Sec. 4.1–4.2) as timm names: the J = 3 EBC backbones and the AU classifiers'.
PAPER_EBC_BACKBONES: tuple[str, ...] = ("resnet50", "efficientnet_b3", "legacy_xception")
PAPER_AU_BACKBONE = "resnet50"

#: Optimiser and schedule of the EBC and AU members (paper Sec. 4.1–4.2, ``docs/method.md#baselines``).
PAPER_HPARAMS: dict[str, dict[str, float | int | tuple[float, float]]] = {
    "ebc": {
        "lr": 1e-3,
        "betas": (0.9, 0.999),
        "weight_decay": 1e-5,
        "epochs": 25,
        "batch_size": 50,
        "image_size": 224,
    },
    "au": {"lr": 1e-4, "betas": (0.9, 0.999), "weight_decay": 1e-6, "epochs": 40, "batch_size": 50, "image_size": 224},
}

#: Sim_Neutral of Eq. 9 (``docs/method.md#au-scores``).
NEUTRAL_SIMILARITY = 0.25

#: Unanimous test-MAS images per emotion (paper Sec. 3.2, ``docs/method.md#mas-split``).
PAPER_N_TEST_PER_CLASS = 100

#: The failure threshold ε of W-FR and upper limit of W-AUC (paper Sec. 4.3, ``docs/method.md#metrics``).
PAPER_W_EPSILON = 0.3

#: Paper Table 4: confidence scores (%), (EBC, AU) per emotion.
PAPER_TABLE4_CS: dict[str, tuple[float, float]] = {
    "Neutral": (81.33, 88.71),
    "Happy": (87.45, 87.50),
    "Sad": (79.88, 84.64),
    "Surprise": (86.47, 90.71),
    "Fear": (83.76, 89.00),
    "Disgust": (84.52, 86.28),
    "Anger": (84.69, 84.78),
    "Contempt": (66.78, 77.78),
}
#: Paper Table 5: training images per subset.
PAPER_TABLE5_TRAIN_SUBSETS: dict[str, int] = {"easy": 194_254, "challenging": 57_427, "difficult": 35_970}
#: Paper Table 8: Hard-FER ResNet-50 accuracy (%).
PAPER_TABLE8_HARD_FER_ACC: dict[str, float] = {"all": 52.06, "easy": 85.86, "challenging": 51.62, "difficult": 34.34}
#: Paper Table 10 / V: Soft-FER W-FR and W-MAE (%).
PAPER_TABLE10_SOFT_FER: dict[str, dict[str, dict[str, float]]] = {
    "resnet50": {
        "w_fr": {"all": 10.85, "easy": 8.00, "challenging": 11.90, "difficult": 18.66},
        "w_mae": {"all": 17.30, "easy": 15.43, "challenging": 18.54, "difficult": 21.21},
    },
    "efficientnet_b3": {
        "w_fr": {"all": 10.58, "easy": 6.28, "challenging": 11.25, "difficult": 18.35},
        "w_mae": {"all": 17.03, "easy": 15.13, "challenging": 18.63, "difficult": 20.81},
    },
}

__all__ = [
    "NEUTRAL_SIMILARITY",
    "PAPER_AU_BACKBONE",
    "PAPER_EBC_BACKBONES",
    "PAPER_HPARAMS",
    "PAPER_N_TEST_PER_CLASS",
    "PAPER_TABLE10_SOFT_FER",
    "PAPER_TABLE4_CS",
    "PAPER_TABLE5_TRAIN_SUBSETS",
    "PAPER_TABLE8_HARD_FER_ACC",
    "PAPER_W_EPSILON",
]
