"""Building the parts of a run from its config: the vector env, PPO, the labeler, the held-out sample and the reward
model with its trainer, new or from the run's last checkpoint.

``PreferenceRun`` calls these in order when it starts or resumes a run; each takes what it needs as arguments. Where
the env family matters (image observations: the Atari CNN, rollout-sized initial collection), it is decided here,
so the loop's stages never ask.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecNormalize

from pbrl.allocator import reuse_freed_memory
from pbrl.config import ConfigError, TrainConfig
from pbrl.envs import make_env
from pbrl.envs.make import obs_action_dims
from pbrl.families import family_of
from pbrl.heldout import HeldOutSample
from pbrl.judges import Judge, judge_name, make_judge
from pbrl.labelers import Labeler, SyntheticOracle
from pbrl.ppo_defaults import policy_kwargs_for_sb3
from pbrl.queries import LabelSchedule
from pbrl.reward import (
    CnnRewardConfig,
    CnnRewardEnsemble,
    EnsembleBase,
    RewardEnsemble,
    RewardModelConfig,
    RewardTrainer,
    TrainerConfig,
    load_ensemble,
)
from pbrl.reward.cnn import CHANNELS_LAST_ON_CPU
from pbrl.rollout import RelabelingPPO, ReturnNormalizer, RolloutHooks, RolloutRecorder
from pbrl.seeds import ORACLE_SEED

#: Env steps collected before RL per initial label and segment step: two segments a comparison, and a fifth more for
#: what is lost where episodes end mid-segment and what is set aside as held out.
INITIAL_STEPS_PER_LABEL_STEP = 2.4


def start_torch(cfg: TrainConfig) -> None:
    """Torch's threads, the allocator and the seed, before any part is built."""
    torch.set_num_threads(cfg.torch_threads)
    reuse_freed_memory()  # CPU fits of the CNN reward spent half their time faulting in fresh mmaps
    torch.manual_seed(cfg.seed)


def return_normalizer(cfg: TrainConfig, saved: dict[str, Any]) -> ReturnNormalizer:
    """The reward scaling of both reward modes, from its ``saved`` state when there is one."""
    normalizer = ReturnNormalizer(cfg.ppo.n_envs, cfg.ppo.settings["gamma"])
    if saved:
        normalizer.load_state_dict(saved)
    return normalizer


def run_rng(cfg: TrainConfig, saved: dict[str, Any]) -> np.random.Generator:
    """The run's one generator (segments, queries, the trainer's resamples), at its ``saved`` state if any."""
    rng = np.random.default_rng(cfg.seed)
    if saved:
        rng.bit_generator.state = saved
    return rng


def label_schedule(cfg: TrainConfig) -> LabelSchedule:
    method = cfg.method
    return LabelSchedule(cfg.n_labels, cfg.total_timesteps, method.initial_label_fraction, method.label_rate_constant)


def initial_steps(cfg: TrainConfig, schedule: LabelSchedule) -> int:
    """Steps of each env copy collected for the initial labels."""
    return math.ceil(INITIAL_STEPS_PER_LABEL_STEP * schedule.n_initial * cfg.method.segment_length / cfg.ppo.n_envs)


def recorder_capacity(cfg: TrainConfig, n_initial_steps: int) -> int:
    """Steps the recorder holds: a rollout, and for vector observations the whole initial collection (images are
    collected in rollout-sized chunks instead: a stack of frames is 28 KB a step)."""
    images = family_of(cfg.env_id).images
    return max(cfg.ppo.settings["n_steps"], n_initial_steps if cfg.learned and not images else 0)


def build_venv(cfg: TrainConfig, capacity: int, saved_stats: Path | None) -> tuple[RolloutRecorder, VecNormalize]:
    """Monitor(make_env) x n_envs -> DummyVecEnv (or SubprocVecEnv) -> RolloutRecorder (raw steps) -> VecNormalize
    (observations), its statistics loaded from ``saved_stats`` when resuming."""
    fns = [lambda i=i: Monitor(make_env(cfg.env_id, seed=cfg.seed + i, max_episode_steps=cfg.episode_steps,
                                        env_kwargs=cfg.env_kwargs))
           for i in range(cfg.ppo.n_envs)]
    vec_env_cls = SubprocVecEnv if cfg.vec_env == "subproc" else DummyVecEnv
    recorder = RolloutRecorder(vec_env_cls(fns), capacity, env_id=cfg.env_id)
    try:
        if saved_stats is not None:
            return recorder, VecNormalize.load(str(saved_stats), recorder)
        return recorder, VecNormalize(recorder, norm_obs=bool(cfg.ppo.settings["normalize"]), norm_reward=False,
                                      gamma=cfg.ppo.settings["gamma"])
    except BaseException:
        recorder.close()
        raise


def build_ppo(cfg: TrainConfig, venv: VecNormalize, device: str, hooks: RolloutHooks, saved: Path | None,
              channels_last: bool = CHANNELS_LAST_ON_CPU) -> RelabelingPPO:
    """PPO on ``venv`` with the run's settings, or the one ``saved`` at the last checkpoint; ``channels_last``: on a
    CPU its conv weights (CnnPolicy) are laid out channels-last."""
    ppo = (RelabelingPPO.load(str(saved), env=venv, device=device, hooks=hooks) if saved is not None
           else _new_ppo(cfg, venv, device, hooks))
    if channels_last and ppo.device.type == "cpu":  # only conv weights change
        ppo.policy.to(memory_format=torch.channels_last)
    return ppo


def learning_rate_at(settings: dict[str, Any], num_timesteps: int, total_timesteps: int) -> float:
    """PPO's learning rate after ``num_timesteps`` of a ``total_timesteps`` run: the preset's, or with ``lr_schedule``
    "linear" that falling to 0 at the last step (run directories from before the setting have none: constant)."""
    lr = float(settings["learning_rate"])
    if settings.get("lr_schedule", "constant") == "linear":
        lr *= max(0.0, 1.0 - num_timesteps / total_timesteps)
    return lr


def _new_ppo(cfg: TrainConfig, venv: VecNormalize, device: str, hooks: RolloutHooks) -> RelabelingPPO:
    p: dict[str, Any] = cfg.ppo.settings
    try:
        return RelabelingPPO(
            p.get("policy", "MlpPolicy"), venv, n_steps=p["n_steps"], batch_size=p["batch_size"],
            n_epochs=p["n_epochs"], gamma=p["gamma"], gae_lambda=p["gae_lambda"], learning_rate=p["learning_rate"],
            ent_coef=p["ent_coef"], clip_range=p["clip_range"], max_grad_norm=p["max_grad_norm"], vf_coef=p["vf_coef"],
            policy_kwargs=policy_kwargs_for_sb3(p["policy_kwargs"]), seed=cfg.seed, device=device, verbose=0,
            hooks=hooks)
    except (AssertionError, ValueError, TypeError, KeyError) as exc:  # SB3 checks its settings with asserts
        raise ConfigError(f"PPO rejected its settings ({type(exc).__name__}: {exc}); change them with "
                          f"--ppo KEY=VALUE (settings: {json.dumps(p, sort_keys=True)})") from None


def build_labeler(cfg: TrainConfig, labeler: Labeler | None) -> tuple[Labeler | None, Judge | None]:
    """The labeler given, or the one ``cfg.labeler`` names, and the scripted judge when it is one (the env pays
    nothing where a judge labels: its score stands in for the true return). None where people label."""
    name = judge_name(cfg.labeler)
    if labeler is None and cfg.learned and name:
        judge = make_judge(name)
        return judge, judge
    if labeler is None and not cfg.human:
        return SyntheticOracle(cfg.teacher, np.random.default_rng(cfg.seed + ORACLE_SEED)), None
    return labeler, None


def build_heldout(cfg: TrainConfig, judge: Judge | None, saved: Path | None) -> HeldOutSample:
    """The held-out sample, scored by the ``judge`` where one labels; loaded from ``saved`` when it exists."""
    heldout = HeldOutSample(cfg.method.heldout_size, cfg.method.heldout_rate, judge.score if judge else None)
    if saved is not None and saved.exists():
        heldout.load(saved)
    return heldout


def build_reward_model(cfg: TrainConfig, venv: VecNormalize, device: str, rng: np.random.Generator,
                       saved: Path | None) -> tuple[EnsembleBase, RewardTrainer]:
    """The reward ensemble (the paper's CNNs for image observations, else MLPs) on ``device`` and its trainer, with
    their state from ``saved`` when it exists."""
    obs_dim, act_dim = obs_action_dims(venv.observation_space, venv.action_space)
    rm = cfg.reward_model
    ensemble: EnsembleBase
    if saved is not None and saved.exists():
        ensemble, extra = load_ensemble(saved)
    elif family_of(cfg.env_id).images:
        ensemble, extra = CnnRewardEnsemble(CnnRewardConfig(
            obs_shape=tuple(venv.observation_space.shape), act_dim=act_dim, n_members=rm.n_members,
            hidden=rm.hidden)), {}
    else:
        ensemble, extra = RewardEnsemble(RewardModelConfig(
            obs_dim=obs_dim, act_dim=act_dim, n_members=rm.n_members, hidden=rm.hidden,
            use_actions=rm.use_actions)), {}
    ensemble.to(device).eval()
    trainer = RewardTrainer(ensemble, TrainerConfig(lr=rm.lr, batch_size=rm.batch_size, max_batches=rm.fit_max_batches,
                                                    l2_init=rm.l2_init, l2_max=rm.l2_max), rng)
    if "optimizer" in extra:
        trainer.optimizer.load_state_dict(extra["optimizer"])
        trainer.l2 = min(extra["l2"], trainer.cfg.l2_max)  # a lower bound given on resume applies at once
    return ensemble, trainer


def check_segments_fit(cfg: TrainConfig, schedule: LabelSchedule, episode_length: int) -> None:
    """Segments are cut within one episode and one rollout: a segment longer than either is never cut, and the
    run would train on a reward model fitted to nothing."""
    n = cfg.method.segment_length
    limits = [(episode_length, "an episode", "--max-episode-steps"),
              (int(cfg.ppo.settings["n_steps"]), "a PPO rollout per env copy", "--ppo n_steps")]
    if schedule.n_initial and cfg.method.initial_episode_steps:
        limits.append((cfg.method.initial_episode_steps, "the initial episodes", "--initial-episode-steps"))
    for limit, what, flag in limits:
        if n > limit:
            raise ConfigError(f"--segment-length {n} is longer than {what} ({limit} steps): no segment could be "
                              f"cut; use --segment-length {limit} or less, or raise {flag}")
