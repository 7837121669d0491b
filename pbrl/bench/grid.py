"""A grid's trials: ``expand`` turns a spec into ``Trial`` records, each with its name and ``pbrl train`` flags.

Trials come seed by seed, so a sweep stopped half way holds whole seeds of the grid. A trial's name says its values
(``Hopper-v5__learned__n700__s0``, plus ``KEY=VALUE`` per extra axis) and names its run directory.
"""

from __future__ import annotations

import itertools
import json
from collections import Counter
from typing import Any

from pbrl.bench.directory import Trial
from pbrl.bench.errors import SpecError
from pbrl.bench.spec import TABLE_FIELDS, flag_of, parse_spec, path_safe

__all__ = ["expand"]


def _flag_value(value: Any) -> str:
    """A value as ``pbrl train`` reads it back: numbers in full, text as it is."""
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        return repr(value)  # 1e-05, inf: what float() parses to the same number
    return str(value)


def _table_value(value: Any) -> str:
    """A ``--ppo``/``--env-kwargs`` value: JSON, or text where the text would not parse as JSON anyway."""
    if isinstance(value, str):
        try:
            json.loads(value)
        except json.JSONDecodeError:
            return value
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def _axis_value(value: Any) -> str:
    return _table_value(value) if isinstance(value, dict | list) else _flag_value(value)


def _train_args(values: dict[str, Any]) -> list[str]:
    """``pbrl train`` flags for {field or "ppo.KEY": value}, in the order given."""
    args: list[str] = []
    for key, value in values.items():
        name, dot, sub = key.partition(".")
        if dot:
            args += [TABLE_FIELDS[name], f"{sub}={_table_value(value)}"]
        else:
            args += [flag_of(name), _flag_value(value)]
    return args


def expand(spec: dict[str, Any], where: str) -> tuple[str | None, list[Trial]]:
    """The spec's name and its trials, in the order they run: seed by seed, so a sweep stopped half way holds
    whole seeds of the grid. A true-reward trial asks no labels: one per env, seed and extra-axes point."""
    grid = parse_spec(spec, where)
    trials: list[Trial] = []
    for seed, env_id, reward in itertools.product(grid.seeds, grid.envs, grid.rewards):
        for n_labels in grid.budgets if reward == "learned" else [None]:
            for point in itertools.product(*grid.axes.values()):
                at = dict(zip(grid.axes, point, strict=True))
                values = {**grid.train, **grid.per_env.get(env_id, {}), **at}
                steps = values.pop("total_timesteps", grid.total_timesteps)
                owned = {"env_id": env_id, "reward": reward, **({"n_labels": n_labels} if n_labels else {}),
                         "seed": seed, "total_timesteps": steps}
                name = "__".join([path_safe(env_id), reward, *([f"n{n_labels}"] if n_labels else []), f"s{seed}",
                                  *(f"{k}={path_safe(_axis_value(v))}" for k, v in at.items())])
                trials.append(Trial(name, env_id, reward, n_labels, seed, steps, at, _train_args({**owned, **values})))
    twice = sorted(name for name, n in Counter(t.name for t in trials).items() if n > 1)
    if twice:
        raise SpecError(f"{where}: two trials would share the name {twice[0]} (env ids or values that differ only "
                        "in / or :); rename one")
    return grid.name, trials

