"""pbrl: preference-based reinforcement learning on Gymnasium, after Christiano et al. (2017).

The core (this package) never imports the UI. Public pieces: ``TrainConfig``, ``PreferenceRun`` (the loop),
``RewardEnsemble``, ``PreferenceStore``, ``SyntheticOracle``; env construction lives in ``pbrl.envs``.
"""

__version__ = "0.1.0"
