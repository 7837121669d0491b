"""``make_env``: the one place an env is built for pbrl, with every wrapper listed in order.

Gymnasium's ids, pbrl's own (``pbrl/HopperBackflip-v0``, the Atari games) and a user's own env named with the module
that registers it (``"my_pkg.envs:Reach-v0"``) all go through it. Whatever makes an id unusable (unknown id, module
that does not import, keyword the env does not take, optional dependency not installed, unsupported space) becomes
one ``EnvSpecError`` line that says what to do, raised before anything else is done with the env.
"""

from __future__ import annotations

import contextlib
import difflib
import importlib
import inspect
import re
from collections.abc import Iterator, Mapping
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.envs.registration import load_env_creator

from pbrl.envs.wrappers import FrozenTerminalState, RecordSimulatorState, RestartAfterEnd, TrueRewardInInfo
from pbrl.errors import UserError
from pbrl.families import FAMILIES, base_name, game_of, is_atari_id, split_id, task_of


class EnvSpecError(UserError):
    """An env id pbrl cannot build, with the reason and what to do instead."""


# Gymnasium's env families whose optional dependencies come as one of its extras, by the entry point's package.
_GYMNASIUM_EXTRAS: dict[str, str] = {
    "gymnasium.envs.box2d": "box2d",
    "gymnasium.envs.mujoco": "mujoco",
    "gymnasium.envs.classic_control": "classic-control",
    "gymnasium.envs.toy_text": "toy-text",
    "gymnasium.envs.phys2d": "jax",
    "gymnasium.envs.tabular": "jax",
}

# make_env's own arguments, which gym.make would otherwise take out of env_kwargs.
_RESERVED_KWARGS = ("render_mode", "max_episode_steps")


def _why(exc: BaseException) -> str:
    """``"TypeError: <first line of the message>"``: the cause of a failure, on one line."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def _missing_module(exc: BaseException) -> str | None:
    """The name of the module whose absence raised ``exc`` (directly or as its cause), if it says."""
    while exc is not None:
        if isinstance(exc, ImportError) and exc.name:
            return exc.name
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return None


def _import_env_module(module: str, env_id: str) -> None:
    """Import the module of a ``"module:EnvId"`` id, which registers the env, or raise one line saying why not."""
    try:
        importlib.import_module(module)
    except Exception as exc:
        missing = _missing_module(exc)
        if missing is not None and missing != module and not module.startswith(missing + "."):
            raise EnvSpecError(f"module {module!r} for --env {env_id!r} needs {missing!r}, which is not installed "
                               f"({_why(exc)}); install it") from exc
        raise EnvSpecError(f"cannot import module {module!r} for --env {env_id!r} ({_why(exc)}); "
                           "is it installed / on PYTHONPATH?") from exc


def _check_env_kwargs(env_kwargs: dict[str, Any] | None) -> None:
    if env_kwargs is None:
        return
    if not isinstance(env_kwargs, Mapping) or not all(isinstance(k, str) for k in env_kwargs):
        raise EnvSpecError(f"env_kwargs must be a dict of keyword arguments by name, got {env_kwargs!r}")
    for key in _RESERVED_KWARGS:
        if key in env_kwargs:
            raise EnvSpecError(f"{key!r} is not an env kwarg here: pbrl sets it from make_env's own {key} argument")


def validate_env_id(env_id: str, env_kwargs: dict[str, Any] | None = None) -> gym.envs.registration.EnvSpec | None:
    """Return the spec of ``env_id`` (None for the Atari games) or raise ``EnvSpecError`` with a reason and fix.

    ``env_id`` may name the module that registers it, as in ``gym.make``: ``"my_pkg.envs:Foo-v0"`` imports
    ``my_pkg.envs`` first. ``env_kwargs`` are checked for their form only; the env's constructor judges them.
    """
    from pbrl.envs.atari import GAMES

    module, name = split_id(env_id)
    if module is not None:
        _import_env_module(module, env_id)
    _check_env_kwargs(env_kwargs)
    if is_atari_id(name):
        if game_of(name) is None:
            raise EnvSpecError(f"{env_id!r} is not one of the Atari games pbrl prepares (score masks, no game-over "
                               f"signal): {', '.join(f'ALE/{g}-v5' for g in GAMES)}")
        return None
    try:
        return gym.spec(name)
    except gym.error.Error as exc:
        raise EnvSpecError(_unknown_id(env_id, module, name, exc)) from None


def _unknown_id(env_id: str, module: str | None, name: str, exc: gym.error.Error) -> str:
    close = difflib.get_close_matches(name, list(gym.registry), n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else "; see gymnasium.registry for the ids installed"
    if isinstance(exc, gym.error.DeprecatedEnv | gym.error.VersionNotFound):
        return f"unknown env id {env_id!r} ({_why(exc)})"  # gymnasium names the versions there are
    if module is None:
        return f"unknown env id {env_id!r} ({type(exc).__name__}){hint}"
    own = [i for i, s in gym.registry.items()
           if isinstance(s.entry_point, str) and s.entry_point.startswith((module + ":", module + "."))]
    if not close and own:
        hint = f"; it registers {', '.join(own[:5])}"
    return f"module {module!r} imports but does not register {name!r} (--env {env_id!r}){hint}"


def make_env(env_id: str, seed: int | None = None, render_mode: str | None = None,
             max_episode_steps: int | None = None, env_kwargs: dict[str, Any] | None = None,
             for_evaluation: bool = False) -> gym.Env:
    """Build ``env_id`` for pbrl, in this order:

    1. ``gym.make`` with the fixed-length / no-torque-penalty kwargs of the task (``pbrl.families``), then
       the user's ``env_kwargs`` over them, and ``max_episode_steps`` (the fixed episode length) when given instead
       of the registered time limit. ``env_id`` may be ``"module:EnvId"`` (the module registers the env). Before
       anything else is done with the env, its spaces (flat Box observations, Box or Discrete actions) and its
       time limit are checked;
    2. for any env that can still terminate early (episodes run to the time limit): ``RestartAfterEnd`` in the
       families that start the task again (the pendulums, unless ``for_evaluation``: evaluations count the env's
       own episode, up to the first fall), else ``FrozenTerminalState``;
    3. ``TrueRewardInInfo``: the oracle's reward is copied to ``info["true_reward"]``;
    4. ``RecordSimulatorState`` for MuJoCo envs: ``info["pbrl_state"]`` holds qpos/qvel for re-rendering clips.

    The Atari games are built by ``pbrl.envs.atari.make_atari`` (its own list), then ``TrueRewardInInfo``. Every
    wrapper records its arguments, so ``gym.make(env.spec)`` rebuilds the same stack. A bad id, module, kwarg,
    missing dependency or unsupported space raises ``EnvSpecError`` with one line that says what to do.
    """
    validate_env_id(env_id, env_kwargs)
    if max_episode_steps is not None and max_episode_steps < 1:
        raise EnvSpecError(f"episode length must be >= 1, got {max_episode_steps}")
    name = split_id(env_id)[1]
    task = task_of(env_id)
    if task.family == "atari":
        return _make_atari(env_id, seed, render_mode, max_episode_steps, env_kwargs)
    kwargs = {**task.env_kwargs, **(env_kwargs or {})}
    if render_mode is not None:
        kwargs["render_mode"] = render_mode
    with _build_errors(env_id, env_kwargs):
        env = gym.make(name, max_episode_steps=max_episode_steps, **kwargs)
    try:
        _check_spaces(env_id, env.observation_space, env.action_space)
        if env.spec is None or env.spec.max_episode_steps is None:
            raise EnvSpecError(f"{env_id!r} has no time limit, and pbrl runs fixed-length episodes: register it with "
                               "max_episode_steps=..., or give the episode length (max_episode_steps)")
    except EnvSpecError:
        env.close()
        raise
    if FAMILIES[task.family].after_end == "restart" and not for_evaluation:
        env = RestartAfterEnd(env)
    elif kwargs.get("terminate_when_unhealthy") is not False:
        env = FrozenTerminalState(env)
    env = TrueRewardInInfo(env)
    if hasattr(env.unwrapped, "data") and hasattr(env.unwrapped, "model"):
        env = RecordSimulatorState(env)
    if seed is not None:
        env.reset(seed=seed)
        env.action_space.seed(seed)
    return env


def _check_spaces(env_id: str, obs_space: gym.Space, act_space: gym.Space) -> None:
    """Raise ``EnvSpecError`` unless pbrl's reward models and PPO can take these spaces (Atari is checked apart)."""
    if not isinstance(obs_space, gym.spaces.Box):
        raise EnvSpecError(f"{env_id!r} has a {_space_text(obs_space)} observation space; pbrl supports flat Box "
                           "observations (or the Atari games it prepares, ALE/Pong-v5, ...): wrap the env, e.g. "
                           "with gymnasium.wrappers.FlattenObservation for Discrete/Tuple/Dict spaces")
    if len(obs_space.shape) >= 2:
        raise EnvSpecError(f"{env_id!r} has {len(obs_space.shape)}-D Box observations {obs_space.shape}; pbrl supports "
                           "flat Box observations, and images only for the Atari games it prepares (ALE/Pong-v5, "
                           "...); for other image envs use a state-based version")
    if not isinstance(act_space, gym.spaces.Box | gym.spaces.Discrete):
        raise EnvSpecError(f"{env_id!r} has a {_space_text(act_space)} action space; pbrl supports Box or Discrete "
                           "actions")
    if isinstance(act_space, gym.spaces.Discrete) and act_space.start != 0:
        raise EnvSpecError(f"{env_id!r} has a {_space_text(act_space)} action space starting at {act_space.start}; "
                           "pbrl (PPO) picks actions 0..n-1, so the space must start at 0")


def _space_text(space: gym.Space) -> str:
    text = str(space)
    return text if len(text) <= 60 else type(space).__name__


@contextlib.contextmanager
def _build_errors(env_id: str, env_kwargs: dict[str, Any] | None) -> Iterator[None]:
    """Turn what building an env raises for a bad input (a missing dependency, a keyword the env does not take,
    env_kwargs it refuses) into one ``EnvSpecError`` line; other errors (bugs) pass with their traceback."""
    from pbrl.extras import MissingExtra

    try:
        yield
    except MissingExtra as exc:
        raise EnvSpecError(str(exc)) from None
    except (ImportError, gym.error.DependencyNotInstalled) as exc:
        raise EnvSpecError(_missing_dependency(env_id, exc)) from exc
    except TypeError as exc:
        bad = re.search(r"unexpected keyword argument '([^']+)'", str(exc))
        if bad is not None:
            raise EnvSpecError(_unexpected_kwarg(env_id, bad.group(1), env_kwargs)) from exc
        fixed = re.search(r"multiple values for keyword argument '([^']+)'", str(exc))
        if fixed is not None and env_kwargs and fixed.group(1) in env_kwargs:
            raise EnvSpecError(f"{env_id!r} sets {fixed.group(1)!r} itself; leave it out of env_kwargs") from exc
        if env_kwargs:
            raise EnvSpecError(f"cannot build {env_id!r} with env_kwargs {env_kwargs} ({_why(exc)})") from exc
        raise
    except Exception as exc:
        if env_kwargs:
            raise EnvSpecError(f"cannot build {env_id!r} with env_kwargs {env_kwargs} ({_why(exc)})") from exc
        raise


def _entry_point(env_id: str) -> Any:
    """The registered entry point of ``env_id``: ``"package.module:Class"`` or a callable (None if unregistered)."""
    try:
        return gym.spec(split_id(env_id)[1]).entry_point
    except gym.error.Error:
        return None


def _missing_dependency(env_id: str, exc: BaseException) -> str:
    missing = _missing_module(exc)
    entry = _entry_point(env_id)
    entry = entry if isinstance(entry, str) else getattr(entry, "__module__", "") or ""
    extra = next((x for pkg, x in _GYMNASIUM_EXTRAS.items() if entry.startswith((pkg + ".", pkg + ":"))), None)
    what = repr(missing.split(".")[0]) if missing else "an optional dependency"
    if extra is not None:
        return f'{env_id!r} needs {what}, which is not installed: pip install "gymnasium[{extra}]"'
    if missing is None:
        return f"{env_id!r} cannot be built here, a dependency is missing ({_why(exc)})"
    return f"{env_id!r} needs {what}, which is not installed ({_why(exc)}); install the package that provides it"


def _unexpected_kwarg(env_id: str, key: str, env_kwargs: dict[str, Any] | None) -> str:
    if env_kwargs and key in env_kwargs:
        source = "from env_kwargs"
    elif key == "render_mode":
        source = "the render mode; a Gymnasium env's __init__ should take render_mode"
    else:
        source = f"pbrl's fixed-horizon setting for {base_name(env_id)} envs"
    taken = _accepted_kwargs(env_id)
    close = difflib.get_close_matches(key, taken, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else (f"; it takes {', '.join(taken)}" if taken else "")
    return f"{env_id!r} does not take the keyword argument {key!r} ({source}){hint}"


def _accepted_kwargs(env_id: str) -> list[str]:
    """The keyword arguments the env's entry point names (empty where it cannot be told, e.g. ``**kwargs`` only)."""
    entry = _entry_point(env_id)
    try:
        params = inspect.signature(load_env_creator(entry) if isinstance(entry, str) else entry).parameters.values()
    except Exception:  # only a hint: no names rather than a second error
        return []
    return [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def _make_atari(env_id: str, seed: int | None, render_mode: str | None, max_episode_steps: int | None,
                env_kwargs: dict[str, Any] | None) -> gym.Env:
    from pbrl.envs.atari import make_atari

    name = split_id(env_id)[1]
    with _build_errors(env_id, env_kwargs):
        env = TrueRewardInInfo(make_atari(name, max_episode_steps, render_mode, env_kwargs))
    if seed is not None:
        env.reset(seed=seed)
        env.action_space.seed(seed)
    return env


def obs_action_dims(observation_space: gym.Space, action_space: gym.Space) -> tuple[int, int]:
    """Flat observation size and reward-model action size (one-hot width for Discrete actions)."""
    obs_dim = int(np.prod(observation_space.shape))
    act_dim = int(action_space.n) if isinstance(action_space, gym.spaces.Discrete) else int(np.prod(action_space.shape))
    return obs_dim, act_dim
