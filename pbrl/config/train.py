"""``TrainConfig``: the config tree of one run (``pbrl.config.tree``) with what a run does with it: build it from flat
names, check it, fill in the env's PPO settings, and save it as ``config.json``.

``config.json`` is flat, keyed by the knobs' flat names (the flags' names: ``reward_lr``, ``teacher_beta``), so a
run directory reads like the command that made it, and run directories written before the tree load unchanged.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
from dataclasses import Field, dataclass
from pathlib import Path
from typing import Any

from pbrl.config.checks import check_device, check_labeler, check_ppo_preset, check_ppo_settings
from pbrl.config.env_defaults import family_defaults
from pbrl.config.knobs import ConfigError, flag_of, flat_name, problem
from pbrl.config.tree import RunSettings


def _knobs() -> dict[str, tuple[str | None, Field]]:
    out: dict[str, tuple[str | None, Field]] = {}
    for f in dataclasses.fields(RunSettings):
        if f.metadata.get("group"):
            for g in dataclasses.fields(f.default_factory):
                out[flat_name(g)] = (f.name, g)
        else:
            out[flat_name(f)] = (None, f)
    return out


#: Every knob by its flat name: the group it lives in (None for the run's own) and its field.
KNOBS: dict[str, tuple[str | None, Field]] = _knobs()
#: The groups of the tree, by attribute name.
GROUPS = tuple(f.name for f in dataclasses.fields(RunSettings) if f.metadata.get("group"))


@dataclass
class TrainConfig(RunSettings):
    """Everything that defines a run; saved as config.json in the run directory."""

    # --- building -------------------------------------------------------------------------------------------------

    @classmethod
    def of(cls, **values: Any) -> TrainConfig:
        """A config from knobs by flat name (``TrainConfig.of(env_id="Hopper-v5", reward_lr=1e-3)``), the rest at
        their defaults. An unknown name is a ``TypeError``, as for any constructor."""
        unknown = sorted(set(values) - set(KNOBS))
        if unknown:
            raise TypeError(f"TrainConfig has no knob {', '.join(map(repr, unknown))}")
        cfg = cls()
        cfg._set(values)
        return cfg

    @classmethod
    def for_env(cls, env_id: str, **values: Any) -> TrainConfig:
        """A resolved config for ``env_id``: the knobs named (by flat name), then the values of the env's family and
        task (``pbrl.families``, as ``pbrl train`` gives them), then the defaults; PPO settings from its preset."""
        return cls.of(**family_defaults(env_id, {"env_id": env_id, **values})).resolve()

    def _set(self, values: dict[str, Any]) -> None:
        groups = {g: dataclasses.asdict(getattr(self, g)) for g in GROUPS}
        for name, value in values.items():
            group, f = KNOBS[name]
            if group is None:
                setattr(self, f.name, value)
            else:
                groups[group][f.name] = value
        for g, kwargs in groups.items():  # rebuilt, so a group's own checks (the teacher's) see the new values
            try:
                setattr(self, g, type(getattr(self, g))(**kwargs))
            except ValueError as exc:
                raise ConfigError(str(exc)) from None

    def replace(self, **values: Any) -> TrainConfig:
        """A copy with the knobs named (by flat name) set to new values."""
        out = copy.deepcopy(self)
        out._set(values)
        return out

    def value(self, name: str) -> Any:
        """The value of the knob with flat name ``name``."""
        group, f = KNOBS[name]
        return getattr(self if group is None else getattr(self, group), f.name)

    def flat(self) -> dict[str, Any]:
        """Every knob's value by flat name (copies of the dict-valued ones)."""
        return {name: copy.deepcopy(self.value(name)) for name in KNOBS}

    # --- what the values mean -------------------------------------------------------------------------------------

    @property
    def learned(self) -> bool:
        return self.reward == "learned"

    @property
    def human(self) -> bool:
        """People answer in labelling windows, asynchronously (the loop never waits on them unless told to)."""
        return self.learned and self.labeler == "human"

    @property
    def episode_steps(self) -> int | None:
        """The fixed episode length asked for, or None for the env's own time limit."""
        return self.max_episode_steps or None

    @property
    def eval_steps(self) -> int | None:
        """The episode length evaluations measure, or None for the env's own time limit."""
        return self.eval_episode_steps or self.episode_steps

    @property
    def rollout_size(self) -> int:
        return int(self.ppo.settings["n_steps"]) * self.ppo.n_envs

    @property
    def round_steps(self) -> int:
        """Agent steps per labelling round: ``label_interval`` rounded up to whole rollouts."""
        return max(1, math.ceil(self.method.label_interval / self.rollout_size)) * self.rollout_size

    def torch_device(self) -> str:
        """The device --device names, with 'auto' decided for this machine and env."""
        if self.device != "auto":
            return self.device
        import torch

        from pbrl.families import family_of

        return "cuda" if family_of(self.env_id).images and torch.cuda.is_available() else "cpu"

    def resolve(self) -> TrainConfig:
        """Fill the env-dependent defaults (PPO settings, n_envs); returns self."""
        from pbrl.ppo_defaults import ppo_defaults

        if self.ppo.settings is None:
            self.ppo.settings = ppo_defaults(self.env_id, self.ppo.preset)
        if self.ppo.n_envs <= 0:
            self.ppo.n_envs = int(self.ppo.settings["n_envs"])
        self.ppo.settings["n_envs"] = self.ppo.n_envs
        return self

    # --- checking -------------------------------------------------------------------------------------------------

    def validate(self) -> None:
        """Raise ``ConfigError`` on the first value that cannot work: each knob's own check (its metadata), then
        the ones that depend on several knobs or on the env."""
        for name, (group, f) in KNOBS.items():
            if group == "teacher":
                continue  # the teacher checks itself, whenever it is built
            message = problem(self.value(name), f, flag_of(f))
            if message:
                raise ConfigError(message)
        l2_init, l2_max = self.value("l2_init"), self.value("l2_max")
        if l2_init > l2_max:
            raise ConfigError(f"--l2-init {l2_init} is above --l2-max {l2_max}: L2 starts at --l2-init and is never "
                              "adapted above --l2-max; lower --l2-init or raise --l2-max")
        check_labeler(self.labeler, self.env_id)
        check_device(self.device)
        check_ppo_preset(self.env_id, self.ppo.preset)
        if self.env_kwargs is not None and not isinstance(self.env_kwargs, dict):
            raise ConfigError(f"env_kwargs must be a mapping of keyword arguments, got {self.env_kwargs!r}")
        if self.ppo.settings is not None:
            check_ppo_settings(self.ppo.settings, self.ppo.n_envs, self.total_timesteps)

    # --- config.json ----------------------------------------------------------------------------------------------

    def to_json(self) -> str:
        data = self.flat()
        data["teacher_beta"] = None if math.isinf(self.teacher.beta) else self.teacher.beta
        return json.dumps(data, indent=2, sort_keys=True)

    def save(self, path: str | Path) -> None:
        from pbrl.run_dir import write_file_atomic

        text = self.to_json() + "\n"
        write_file_atomic(Path(path), lambda tmp: tmp.write_text(text))

    @staticmethod
    def load(path: str | Path) -> TrainConfig:
        """The config saved at ``path``; a missing, unreadable or damaged file is one ``ConfigError`` line."""
        try:
            return TrainConfig.from_json(Path(path).read_text())
        except FileNotFoundError:
            raise ConfigError(f"{path} is missing: the directory holds no pbrl run") from None
        except (OSError, ValueError, TypeError, AttributeError) as exc:
            raise ConfigError(f"{path} cannot be read as a pbrl config ({type(exc).__name__}: {exc}); restore it "
                              "or start a new run in another --run-dir") from None

    @staticmethod
    def from_json(text: str) -> TrainConfig:
        data = json.loads(text)
        if data.get("teacher_beta") is None:
            data["teacher_beta"] = math.inf
        return TrainConfig.of(**{k: v for k, v in data.items() if k in KNOBS})
