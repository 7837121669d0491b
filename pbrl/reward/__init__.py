"""The reward model: ensembles ``(obs, acts) -> rewards (n_members, B, T)`` and how they are fitted to preferences.

``base`` holds what every ensemble shares (the Bradley-Terry loss, output normalisation, checkpoints, the
``PairSource`` seam the trainer fits through, ``load_ensemble``); ``mlp`` the ensemble for vector observations,
``cnn`` the paper's Atari CNNs, ``frames`` the packing that keeps Atari pairs small, ``dataset`` the labelled pairs
of a fit, ``trainer`` the fit itself, and ``diagnostics`` how learned returns compare with true ones. The loop uses
these; a plain Gymnasium or SB3 wrapper can use a loaded ensemble outside it. Importing this package registers both
kinds of ensemble, so ``load_ensemble`` reads either.
"""

from pbrl.reward.base import (
    RANDOM_ANSWER_PROB,
    EnsembleBase,
    PairSource,
    bradley_terry_loss,
    load_ensemble,
    preference_probability,
)
from pbrl.reward.cnn import CnnRewardConfig, CnnRewardEnsemble
from pbrl.reward.dataset import LabelledPairs, PreferenceDataset
from pbrl.reward.mlp import RewardEnsemble, RewardModelConfig
from pbrl.reward.trainer import FitStats, RewardTrainer, TrainerConfig

__all__ = [
    "RANDOM_ANSWER_PROB",
    "CnnRewardConfig",
    "CnnRewardEnsemble",
    "EnsembleBase",
    "FitStats",
    "LabelledPairs",
    "PairSource",
    "PreferenceDataset",
    "RewardEnsemble",
    "RewardModelConfig",
    "RewardTrainer",
    "TrainerConfig",
    "bradley_terry_loss",
    "load_ensemble",
    "preference_probability",
]
