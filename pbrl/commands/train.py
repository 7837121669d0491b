"""``pbrl train``: start a run, resume it, or start afresh one that stopped before its first checkpoint; the PPO
settings of ``--ppo KEY=VALUE`` and the env check every new run makes before anything is written."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from pbrl.config import KNOBS, ConfigError, TrainConfig, check_ppo_preset, family_defaults, value_sources
from pbrl.errors import UsageError
from pbrl.families import ppo_preset
from pbrl.run_dir import RunDir


def _key_values(flag: str, items: list[str], keys: Sequence[str] | None = None) -> dict[str, Any]:
    """``KEY=VALUE`` items as a dict, values parsed as JSON where they can be (numbers, lists, true/false)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key or (keys is not None and key not in keys):
            known = f" with KEY one of {', '.join(sorted(keys))}" if keys is not None else ""
            raise UsageError(f"{flag} takes KEY=VALUE{known}; got {item!r}")
        try:
            out[key] = json.loads(raw)
        except json.JSONDecodeError:
            out[key] = raw
    return out


def ppo_overrides(env_id: str, items: list[str], preset: str = "") -> dict[str, Any]:
    """The PPO preset for ``env_id`` ("" = its default) with each ``KEY=VALUE`` applied (values parsed as JSON where
    they can be)."""
    from pbrl.ppo_defaults import ppo_defaults

    check_ppo_preset(env_id, preset)
    ppo = ppo_defaults(env_id, preset)
    return {**ppo, **_key_values("--ppo", items, sorted(ppo))}


def check_env(env_id: str, max_episode_steps: int | None, env_kwargs: dict[str, Any] | None = None) -> None:
    """Build the env and take one step in it, so unknown ids, unsupported spaces and env kwargs the env only trips
    over when it steps (``--env-kwargs ctrl_cost_weight=abc``) fail as one line before anything is written."""
    from pbrl.envs import EnvSpecError, make_env

    try:
        env = make_env(env_id, max_episode_steps=max_episode_steps, env_kwargs=env_kwargs)
    except EnvSpecError as exc:
        raise UsageError(str(exc)) from None
    try:
        env.reset(seed=0)
        env.step(env.action_space.sample())
    except Exception as exc:  # the user's env, or a kwarg it was given, fails: say so rather than train into it
        why = str(exc).strip().splitlines()[-1:] or [""]
        given = f" with --env-kwargs {json.dumps(env_kwargs)}" if env_kwargs else ""
        raise UsageError(f"--env {env_id}{given} fails on its first step ({type(exc).__name__}: {why[0]})") from None
    finally:
        env.close()


#: Settings a resumed run may change: how often and how much it refits, its compute, and how long it trains (labels
#: already asked stay asked; the rest of the budget is spread over the new length); nothing that changes what was
#: asked.
RESUME_CHANGEABLE = frozenset(name for name, (_, f) in KNOBS.items() if f.metadata["resume"])


def _resumed_config(run: RunDir, given: dict[str, Any]) -> tuple[TrainConfig, dict[str, Any]]:
    """The run's saved config with the settings a resume may change (``RESUME_CHANGEABLE``) applied, and those
    changes (saved by the caller once it holds the run's lock)."""
    cfg = TrainConfig.load(run.config)
    changed = {k: v for k, v in given.items() if k in RESUME_CHANGEABLE and cfg.value(k) != v}
    done = run.read_json(run.state)["num_timesteps"]
    if changed.get("total_timesteps", done) < done:
        raise UsageError(f"--total-timesteps {changed['total_timesteps']} is below the {done} steps this run has "
                         "taken; give a larger number to train it longer")
    ignored = sorted(k for k in given if k not in RESUME_CHANGEABLE)
    if changed:
        cfg = cfg.replace(**changed)
        cfg.validate()
    if ignored:
        print(f"pbrl: resuming with the run's saved config; ignoring {', '.join(ignored)} (only "
              f"{', '.join(sorted(RESUME_CHANGEABLE))} can change on --resume)", file=sys.stderr)
    return cfg, changed


def _restarted_config(run: RunDir) -> TrainConfig:
    """The saved config of a run that stopped before its first checkpoint, to start it afresh."""
    try:
        cfg = TrainConfig.load(run.config).replace(run_dir=str(run.path))
        cfg.validate()
    except ConfigError as exc:
        raise UsageError(f"{run.path} holds a run that never reached its first checkpoint and whose config cannot "
                         f"run ({exc}); delete the directory and start again") from None
    print(f"pbrl: {run.path} stopped before its first checkpoint; starting it afresh from its config.json",
          file=sys.stderr)
    return cfg


def _watch_window(window, training) -> None:
    """Wait for the labelling window of ``--ui`` (so its process never lingers as a zombie) and say in one line what
    its closing means for the run."""
    code = window.wait()
    run, n = training.run_dir.path, training.schedule.n_initial
    reopen = f"reopen it with  pbrl label --run-dir {run}"
    if training.finished:
        return
    how = "closed" if code == 0 else f"stopped with exit code {code}"
    if training.cfg.human and not training.state.pretrained:
        what = f"before the first {n} labels were in; training waits for them: {reopen}"
    else:
        what = f"; training goes on with the labels it has: {reopen}"
    print(f"\npbrl: the labelling window {how} {what}".replace(" ;", ";"), file=sys.stderr, flush=True)


def cmd_train(args: argparse.Namespace) -> int:
    from pbrl.finite import NonFiniteError
    from pbrl.loop import PreferenceRun

    run = RunDir(args.run_dir)
    given = {name: getattr(args, name) for name in KNOBS
             if hasattr(args, name) and name not in ("run_dir", "ppo", "env_kwargs")}
    if args.resume and args.ppo:
        given["ppo"] = args.ppo
    if args.resume and args.env_kwargs_items:
        given["env_kwargs"] = args.env_kwargs_items
    restart = args.resume and run.never_checkpointed()
    changed: dict[str, Any] = {}
    if restart:
        cfg = _restarted_config(run)
    elif args.resume:
        run.check_whole()
        cfg, changed = _resumed_config(run, given)
    else:
        run.check_new()  # before the env is built: a forgotten --resume is told at once
        cfg = TrainConfig.of(run_dir=args.run_dir, **family_defaults(given.get("env_id", TrainConfig.env_id), given))
        cfg.ppo.settings = ppo_overrides(cfg.env_id, args.ppo, cfg.ppo.preset)
        cfg.sources = value_sources(cfg.env_id, given, _key_values("--ppo", args.ppo),
                                    ppo_preset(cfg.env_id, cfg.ppo.preset)[1])
        cfg.env_kwargs = _key_values("--env-kwargs", args.env_kwargs_items) or None
        check_env(cfg.env_id, cfg.episode_steps, cfg.env_kwargs)  # the env first: the other checks depend on it
        cfg.validate()
        cfg.resolve()
    if args.ui and not cfg.human:
        raise UsageError("--ui opens the labelling window for people; it needs --labeler human")
    if args.ui:  # the extras a flag needs are checked before anything is written
        from pbrl.ui import require_pygame

        require_pygame()
    if args.video:
        from pbrl.video import require_video_writer

        require_video_writer()
    training = PreferenceRun(cfg, run, resume=True) if args.resume and not restart else \
        PreferenceRun.create(cfg, restart=restart)
    if changed:  # under the run's lock, which the training run holds: the run's record says how it went on
        cfg.save(run.config)
        print(f"pbrl: resuming with {', '.join(f'{k}={v}' for k, v in sorted(changed.items()))} from now on",
              file=sys.stderr)
    window = None
    if cfg.human:
        if args.ui:
            import subprocess
            import threading

            window = subprocess.Popen([sys.executable, "-m", "pbrl", "label", "--run-dir", str(run.path)])
            threading.Thread(target=_watch_window, args=(window, training), daemon=True).start()
        else:
            print(f"pbrl: queries go to {run.store}; answer them with:  pbrl label --run-dir {run.path}  "
                  f"(or in a browser: pbrl serve --run-dir {run.path})",
                  file=sys.stderr, flush=True)
    try:
        metrics = training.run(progress=not args.no_progress)
    except NonFiniteError as exc:
        raise UsageError(f"{exc}; nothing non-finite was saved: once the cause is fixed, pbrl train --resume "
                         f"--run-dir {run.path} goes on from the last checkpoint") from None
    finally:
        training.close()
        if window is not None and window.poll() is None:
            print("pbrl: training is over; the labelling window stays open until you close it", file=sys.stderr)
    if args.video:
        from pbrl.video import record_run_video

        metrics["video"] = record_run_video(run.path, run.path / "policy.mp4")["video"]
    print(json.dumps(metrics, indent=2))
    return 0
