"""A bench spec checked into a ``Grid``: the [bench] table of a TOML file, or the same grid given by flags.

A spec names the grid's lists (envs, rewards, label budgets, seeds), the ``pbrl train`` values every trial and each
env adds, and any extra axes (a train field, or ``ppo.KEY`` / ``env_kwargs.KEY``). Every key and value is checked
against ``TrainConfig``'s fields here, so a mistyped spec ends in one ``SpecError`` line before anything runs.
``pbrl.bench.grid`` expands the checked grid into trials.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pbrl.bench.errors import SpecError
from pbrl.config import KNOBS, REWARDS, TrainConfig
from pbrl.config import flag_of as knob_flag

__all__ = ["BENCH_KEYS", "GRID_FIELDS", "TABLE_FIELDS", "Grid", "flag_of", "parse_spec", "path_safe", "read_spec",
           "spec_from_flags"]

#: the keys of [bench]; the lists are the grid's axes
BENCH_KEYS = ("name", "envs", "rewards", "n_labels", "seeds", "total_timesteps", "train", "axes", "env")
#: TrainConfig fields the grid sets itself, and where in the spec they go instead
GRID_FIELDS = {"env_id": "envs", "env": "envs", "reward": "rewards", "n_labels": "n_labels", "seed": "seeds",
               "total_timesteps": "total_timesteps", "run_dir": "--dir"}
#: TrainConfig fields given as tables of KEY = VALUE (``--ppo KEY=VALUE``, ``--env-kwargs KEY=VALUE``)
TABLE_FIELDS = {"ppo": "--ppo", "env_kwargs": "--env-kwargs"}
_FIELDS = {name: f for name, (_, f) in KNOBS.items()}
_TRAIN_FIELDS = {n: f for n, f in _FIELDS.items() if f.metadata["cli"] and n not in GRID_FIELDS}
_KINDS = {"int": "a whole number", "float": "a number", "str": "text"}


def path_safe(text: str) -> str:
    return text.replace("/", "_").replace(":", "_")


def flag_of(name: str) -> str:
    """The ``pbrl train`` flag of the TrainConfig field ``name``."""
    return knob_flag(_FIELDS[name])


def _kind(f: dataclasses.Field) -> str:
    return f.type if isinstance(f.type, str) else f.type.__name__


def _unknown(where: str, key: str, known: Sequence[str]) -> SpecError:
    close = difflib.get_close_matches(key, known, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else f" (known: {', '.join(known)})"
    return SpecError(f"{where}: unknown key {key!r}{hint}")


def _train_key(where: str, key: str) -> str:
    """A train value's field name (flag names with - or _), or a SpecError saying where it goes instead."""
    name = key.replace("-", "_")
    if name in GRID_FIELDS:
        raise SpecError(f"{where}: {key} is set by the grid; give it as {GRID_FIELDS[name]} in [bench]"
                        + (" (or per env in [bench.env.\"ENV\"])" if name == "total_timesteps" else ""))
    if name not in _TRAIN_FIELDS and name not in TABLE_FIELDS:
        raise _unknown(where, key, [*sorted(_TRAIN_FIELDS), *TABLE_FIELDS])
    return name


def _check_value(where: str, name: str, value: Any) -> Any:
    """``value`` if it suits the TrainConfig field ``name`` (its type and choices), else a SpecError."""
    f = _TRAIN_FIELDS[name]
    kind = _kind(f)
    ok = {"int": isinstance(value, int) and not isinstance(value, bool),
          "float": isinstance(value, int | float) and not isinstance(value, bool),
          "str": isinstance(value, str)}[kind]
    if not ok:
        raise SpecError(f"{where}: {name} must be {_KINDS[kind]}, got {value!r}")
    choices = f.metadata.get("choices")
    if choices and value not in choices:
        raise SpecError(f"{where}: {name} must be one of {', '.join(choices)}, got {value!r}")
    return value


def _train_values(where: str, table: Any, allow: Sequence[str] = ()) -> dict[str, Any]:
    """A [bench.train] or [bench.env."ENV"] table as {field: value}; ppo and env_kwargs as {"ppo.KEY": value}."""
    if not isinstance(table, dict):
        raise SpecError(f"{where} must be a table of KEY = VALUE")
    out: dict[str, Any] = {}
    for key, value in table.items():
        name = key.replace("-", "_") if key.replace("-", "_") in allow else _train_key(where, key)
        if name in TABLE_FIELDS:
            if not isinstance(value, dict):
                raise SpecError(f"{where}: {key} must be a table, e.g. {key} = {{ KEY = VALUE }}")
            out.update({f"{name}.{k}": v for k, v in value.items()})
        elif name == "total_timesteps":
            out[name] = _positive_int(where, name, value)
        else:
            out[name] = _check_value(where, name, value)
    return out


def _positive_int(where: str, key: str, value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise SpecError(f"{where}: {key} must be a positive whole number, got {value!r}")
    return value


def _value_list(where: str, key: str, values: Any, shape: str) -> list[Any]:
    """``values`` if it is a list with something in it, else a SpecError (``shape``: what the key takes)."""
    if not isinstance(values, list):
        raise SpecError(f"{where}: {key} must be {shape}, e.g. {key} = [{values!r}]")
    if not values:
        raise SpecError(f"{where}: {key} is empty: the grid has no trials")
    return values


def _no_value_twice(where: str, key: str, values: list[Any]) -> None:
    # as JSON text: a value may be a list or a table (a PPO setting), which a set cannot hold
    if len({json.dumps(v, sort_keys=True) for v in values}) < len(values):
        raise SpecError(f"{where}: {key} lists a value twice: {values!r}")


def _axis(where: str, key: str, values: Any) -> tuple[str, list[Any]]:
    _no_value_twice(where, key, _value_list(where, key, values, "a list of values"))
    return key, values


def _axes(where: str, table: Any) -> dict[str, list[Any]]:
    """[bench.axes] as {key: values}: a train field, or ``ppo.KEY`` / ``env_kwargs.KEY`` (quoted or as a table)."""
    if not isinstance(table, dict):
        raise SpecError(f"{where} must be a table of KEY = [VALUES]")
    out: dict[str, list[Any]] = {}
    for key, values in table.items():
        head, dot, sub = key.partition(".")
        name = _train_key(where, head)
        if dot and name not in TABLE_FIELDS:
            raise SpecError(f"{where}: {key!r}: only {' and '.join(TABLE_FIELDS)} take KEY.SUBKEY axes")
        if name in TABLE_FIELDS:
            subtable = {sub: values} if dot else values
            if not isinstance(subtable, dict):
                raise SpecError(f"{where}: {key} takes the axes of single {name} settings, e.g. "
                                f"\"{name}.KEY\" = [V1, V2]")
            out.update(_axis(where, f"{name}.{k}", v) for k, v in subtable.items())
        else:
            _, values = _axis(where, name, values)
            out[name] = [_check_value(where, name, v) for v in values]
    return out


def _grid_list(where: str, bench: dict[str, Any], key: str, default: list[Any],
               check: Callable[[Any], bool], what: str) -> list[Any]:
    if key not in bench and not default:
        raise SpecError(f"{where}: [bench] needs {key}, e.g. {key} = [\"Hopper-v5\"]")
    values = _value_list(where, key, bench.get(key, default), "a list")
    for value in values:
        if not check(value):
            raise SpecError(f"{where}: {key} must list {what}, got {value!r}")
    _no_value_twice(where, key, values)
    return values


@dataclass
class Grid:
    """A spec, checked: the grid's lists and the train values every trial, each env and each axis point adds."""

    name: str | None
    envs: list[str]
    rewards: list[str]
    budgets: list[int]
    seeds: list[int]
    total_timesteps: int
    train: dict[str, Any]  # {field or "ppo.KEY": value}, for every trial
    per_env: dict[str, dict[str, Any]]  # {env_id: {field or "ppo.KEY" or "total_timesteps": value}}
    axes: dict[str, list[Any]]  # {field or "ppo.KEY": values}


def parse_spec(spec: dict[str, Any], where: str) -> Grid:
    """A spec as read from TOML (``{"bench": {...}}``) checked into a Grid; ``where`` names it in error messages."""
    unknown = [k for k in spec if k != "bench"]
    if unknown or not isinstance(spec.get("bench"), dict):
        raise SpecError(f"{where}: a spec is one [bench] table" + (f"; unknown {unknown[0]!r}" if unknown else ""))
    bench = spec["bench"]
    for key in bench:
        if key not in BENCH_KEYS:
            raise _unknown(f"{where} [bench]", key, BENCH_KEYS)
    name = bench.get("name")
    if name is not None and (not isinstance(name, str) or not name or path_safe(name) != name):
        raise SpecError(f"{where}: name must be text without / or : (it names the directory), got {name!r}")
    whole = lambda v: isinstance(v, int) and not isinstance(v, bool)  # noqa: E731
    envs = _grid_list(where, bench, "envs", [], lambda v: isinstance(v, str) and v != "", "env ids")
    grid = Grid(
        name, envs,
        rewards=_grid_list(where, bench, "rewards", ["learned"], lambda v: v in REWARDS,
                           f"rewards from {', '.join(REWARDS)}"),
        budgets=_grid_list(where, bench, "n_labels", [TrainConfig.n_labels], lambda v: whole(v) and v > 0,
                           "positive whole numbers"),
        seeds=_grid_list(where, bench, "seeds", [0], lambda v: whole(v) and 0 <= v < 2**31,
                         f"whole numbers from 0 to {2**31 - 1}"),
        total_timesteps=_positive_int(f"{where} [bench]", "total_timesteps",
                                      bench.get("total_timesteps", TrainConfig.total_timesteps)),
        train=_train_values(f"{where} [bench.train]", bench.get("train", {})),
        per_env={}, axes=_axes(f"{where} [bench.axes]", bench.get("axes", {})))
    per_env = bench.get("env", {})
    if not isinstance(per_env, dict):
        raise SpecError(f"{where}: env must be tables of per-env values, e.g. [bench.env.\"{envs[0]}\"]")
    for env_id, table in per_env.items():
        if env_id not in envs:
            raise SpecError(f"{where}: [bench.env.\"{env_id}\"] names an env that is not in envs ({', '.join(envs)})")
        grid.per_env[env_id] = _train_values(f"{where} [bench.env.\"{env_id}\"]", table, allow=("total_timesteps",))
    sources = {"[bench.train]": grid.train, **{f"[bench.env.\"{e}\"]": v for e, v in grid.per_env.items()}}
    for key in grid.axes:
        for source, values in sources.items():
            if key in values:
                raise SpecError(f"{where}: {key} is both an axis and set in {source}; keep one")
    return grid


def read_spec(path: Path) -> dict[str, Any]:
    """The TOML spec file at ``path``, or one SpecError line."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        try:
            import tomli as tomllib
        except ModuleNotFoundError:
            raise SpecError("reading a spec file on Python 3.10 needs tomli: pip install tomli") from None
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise SpecError(f"no spec file {path}; see benchmarks/*.toml for examples") from None
    except OSError as exc:
        raise SpecError(f"{path} cannot be read ({exc.strerror})") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{path} is not valid TOML ({exc})") from None


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _key_value(flag: str, item: str) -> tuple[str, str]:
    key, sep, raw = item.partition("=")
    if not sep or not key:
        raise SpecError(f"{flag} takes KEY=VALUE, got {item!r}")
    return key, raw


def _flag_train_value(flag: str, key: str, raw: str) -> Any:
    """A ``--train``/``--axis`` value as its field's type, so --train pretrain_epochs=5 gives 5, not "5"."""
    name = key.replace("-", "_")
    f = _TRAIN_FIELDS.get(name)
    if f is None or name in TABLE_FIELDS:
        return _parse_value(raw)
    try:
        return {"int": int, "float": float, "str": str}[_kind(f)](raw)
    except ValueError:
        raise SpecError(f"{flag} {key}: {name} must be {_KINDS[_kind(f)]}, got {raw!r}") from None


def spec_from_flags(args: argparse.Namespace) -> dict[str, Any]:
    """The grid of ``--env/--reward/--n-labels/--seeds/--total-timesteps/--train/--ppo/--axis`` as a spec."""
    bench: dict[str, Any] = {"envs": args.envs}
    for key in ("rewards", "n_labels", "seeds", "total_timesteps"):
        if getattr(args, key) is not None:
            bench[key] = getattr(args, key)
    train: dict[str, Any] = {}
    for item in args.train:
        key, raw = _key_value("--train", item)
        train[key] = _flag_train_value("--train", key, raw)
    ppo = dict(_key_value("--ppo", item) for item in args.ppo)
    if ppo:
        train["ppo"] = {k: _parse_value(v) for k, v in ppo.items()}
    axes: dict[str, Any] = {}
    for item in args.axis:
        key, raw = _key_value("--axis", item)
        axes[key] = [_flag_train_value("--axis", key.partition(".")[0], v) if "." not in key else _parse_value(v)
                     for v in raw.split(",")]
    bench.update({"train": train} if train else {}, **({"axes": axes} if axes else {}))
    return {"bench": bench}

