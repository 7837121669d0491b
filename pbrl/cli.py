"""The ``pbrl`` command: train, resume, evaluate and inspect runs.

Every ``TrainConfig`` field is a ``pbrl train`` flag, with its field doc as the help. Errors a user can make
(unknown env, bad numbers, a run dir in the wrong state) end in one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any

from pbrl.config import ConfigError, TrainConfig, check_ppo_preset, family_defaults, value_sources
from pbrl.errors import UserError
from pbrl.extras import MissingExtra
from pbrl.families import ppo_preset
from pbrl.ppo_defaults import PPO_KEYS
from pbrl.run_dir import RunDir


class UsageError(UserError):
    """A mistake on the command line, reported as one line."""


def _add_config_flags(parser: argparse.ArgumentParser) -> None:
    for f in dataclasses.fields(TrainConfig):
        if not f.metadata.get("cli", True) or f.name == "run_dir":
            continue
        flag = f.metadata.get("flag", "--" + f.name.replace("_", "-"))
        kind = {"int": int, "float": float, "str": str}[f.type if isinstance(f.type, str) else f.type.__name__]
        default = f.default
        shown = "inf" if isinstance(default, float) and math.isinf(default) else default
        parser.add_argument(flag, dest=f.name, type=kind, default=argparse.SUPPRESS, metavar=f.name.upper(),
                            choices=f.metadata.get("choices"), help=f"{f.metadata['help']} (default: {shown})")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pbrl", description="Preference-based RL (Christiano et al. 2017): teach an agent by comparing clips.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = sub.add_parser(
        "train", help="train an agent from preferences (or on the true reward)",
        description="Train PPO on a reward learned from comparisons, or on the true reward. Defaults shown are "
                    "for MuJoCo; where a flag is not given, the Atari games (ALE/Pong-v5, ...) take the paper's Atari "
                    "settings (segments of 25 steps, 500 initial labels, rate constant 5e6, the last 3,000 labels). "
                    "config.json in the run directory records every value used.")
    train.add_argument("--run-dir", required=True, help="directory of the run (created; must be new unless --resume)")
    train.add_argument("--resume", action="store_true", help="continue the run in --run-dir from its last checkpoint")
    train.add_argument("--no-progress", action="store_true", help="no progress bar (for logs and CI)")
    train.add_argument("--ui", action="store_true",
                       help="with --labeler human: also open the labelling window (pbrl label) for this run")
    train.add_argument("--video", action="store_true",
                       help="at the end, write a video of the trained policy to RUN_DIR/policy.mp4 (needs the "
                            "video extra)")
    train.add_argument("--ppo", action="append", default=[], metavar="KEY=VALUE",
                       help="override one PPO setting of the RL Zoo defaults, e.g. --ppo n_steps=1024 "
                            "--ppo learning_rate=1e-4 (repeatable; keys: " + ", ".join(PPO_KEYS) + ")")
    train.add_argument("--env-kwargs", action="append", default=[], metavar="KEY=VALUE", dest="env_kwargs_items",
                       help="a keyword argument for the env's constructor, e.g. --env-kwargs target=2.0; values "
                            "are read as JSON where they parse, else as text (repeatable)")
    _add_config_flags(train)

    ev = sub.add_parser("eval", help="true return of a run's saved policy",
                        description="Evaluate the saved policy of a run on the env's true reward.")
    ev.add_argument("--run-dir", required=True, help="directory of the run")
    ev.add_argument("--episodes", type=int, default=10, help="episodes to evaluate (default: 10)")
    ev.add_argument("--stochastic", action="store_true", help="sample actions instead of the deterministic policy")

    demo = sub.add_parser(
        "demo", help="a short synthetic-oracle run compared with true-reward PPO and random actions",
        description="Train PPO from synthetic preferences and PPO on the true reward side by side (two processes), "
                    "then print both agents' true returns next to a random policy's.")
    demo.add_argument("--run-dir", default=None, help="parent directory of the two runs (default: runs/demo-TIME)")
    demo.add_argument("--env", dest="env_id", default=DEMO["env_id"], help=f"env id (default: {DEMO['env_id']})")
    demo.add_argument("--total-timesteps", type=int, default=DEMO["total_timesteps"],
                      help=f"PPO steps per agent (default: {DEMO['total_timesteps']})")
    demo.add_argument("--n-labels", type=int, default=DEMO["n_labels"],
                      help=f"synthetic labels for the learned-reward agent (default: {DEMO['n_labels']})")
    demo.add_argument("--seed", type=int, default=0, help="seed (default: 0)")
    demo.add_argument("--eval-episodes", type=int, default=10, help="evaluation episodes per policy (default: 10)")

    lab = sub.add_parser(
        "label", help="open the clip-comparison window and answer a run's queries",
        description="Show pairs of clips from a run trained with --labeler human and store which one is better. "
                    "Start it before, during or after training; several windows (people) can share one run.")
    lab.add_argument("--run-dir", required=True, help="directory of the run (waits for it if training has not "
                                                      "started yet)")
    lab.add_argument("--name", default=None, help="your name, stored with every answer (default: your user name)")
    lab.add_argument("--instructions", default=None,
                     help="the task in words, shown at the top (default: the run's --instructions)")
    lab.add_argument("--size", type=int, default=None,
                     help="clip height in pixels, 32 up to what fits the screen (default: the window takes about "
                          "two thirds of the screen's width; it can be resized)")
    lab.add_argument("--lease-s", type=float, default=120.0,
                     help="seconds without input after which this window gives its pairs back (default: 120)")

    vid = sub.add_parser("video", help="write a video of a run's saved policy",
                         description="Play the run's deterministic policy and write what it does as MP4 or GIF.")
    vid.add_argument("--run-dir", required=True, help="directory of the run")
    vid.add_argument("--episodes", type=int, default=1, help="episodes to record (default: 1)")
    vid.add_argument("--out", default=None, help="output file, .mp4 or .gif (default: RUN_DIR/policy.mp4)")
    vid.add_argument("--size", type=int, default=256, help="frame size in pixels (default: 256)")
    vid.add_argument("--max-steps", type=int, default=None, help="record at most this many steps per episode")

    st = sub.add_parser("status", help="one JSON object describing a run",
                        description="Print timesteps, labels, pending queries, reward-model accuracy, the training "
                                    "episodes' true return, the latest and best evaluations and the time left as "
                                    "JSON.")
    st.add_argument("--run-dir", required=True, help="directory of the run")

    pr = sub.add_parser("presets", help="the settings an env gets where no flag is given",
                        description="Print the env's family and task, the method settings they change, and its PPO "
                                    "presets (the default one first) with where each comes from.")
    pr.add_argument("env", metavar="ENV", help="env id, e.g. Hopper-v5 or ALE/Pong-v5")

    sub.add_parser("bench", help="run a grid of training runs on Ray Tune, resumable; `pbrl bench report DIR`",
                   description="pbrl bench SPEC.toml [--dir DIR] [--max-concurrent N] [--address auto|HOST:PORT]; "
                               "pbrl bench report DIR. See `pbrl bench --help` and docs/bench.md.",
                   add_help=False)
    return parser


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


def _check_env(env_id: str, max_episode_steps: int | None, env_kwargs: dict[str, Any] | None = None) -> None:
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
RESUME_CHANGEABLE = frozenset({"label_interval", "fit_epochs", "fit_max_batches", "torch_threads", "eval_episodes",
                               "eval_episode_steps",
                               "eval_every", "device", "vec_env", "total_timesteps"})


def _resumed_config(run: RunDir, given: dict[str, Any]) -> tuple[TrainConfig, dict[str, Any]]:
    """The run's saved config with the settings a resume may change (``RESUME_CHANGEABLE``) applied, and those
    changes (saved by the caller once it holds the run's lock)."""
    cfg = TrainConfig.load(run.config)
    changed = {k: v for k, v in given.items() if k in RESUME_CHANGEABLE and getattr(cfg, k) != v}
    done = run.read_json(run.state)["num_timesteps"]
    if changed.get("total_timesteps", done) < done:
        raise UsageError(f"--total-timesteps {changed['total_timesteps']} is below the {done} steps this run has "
                         "taken; give a larger number to train it longer")
    ignored = sorted(k for k in given if k not in RESUME_CHANGEABLE)
    if changed:
        cfg = dataclasses.replace(cfg, **changed)
        cfg.validate()
    if ignored:
        print(f"pbrl: resuming with the run's saved config; ignoring {', '.join(ignored)} (only "
              f"{', '.join(sorted(RESUME_CHANGEABLE))} can change on --resume)", file=sys.stderr)
    return cfg, changed


def _restarted_config(run: RunDir) -> TrainConfig:
    """The saved config of a run that stopped before its first checkpoint, to start it afresh."""
    try:
        cfg = dataclasses.replace(TrainConfig.load(run.config), run_dir=str(run.path))
        cfg.validate()
    except ConfigError as exc:
        raise UsageError(f"{run.path} holds a run that never reached its first checkpoint and whose config cannot "
                         f"run ({exc}); delete the directory and start again") from None
    print(f"pbrl: {run.path} stopped before its first checkpoint; starting it afresh from its config.json",
          file=sys.stderr)
    return cfg


def _watch_window(window, session) -> None:
    """Wait for the labelling window of ``--ui`` (so its process never lingers as a zombie) and say in one line what
    its closing means for the run."""
    code = window.wait()
    run, n = session.run_dir.path, session.schedule.n_initial
    reopen = f"reopen it with  pbrl label --run-dir {run}"
    if session.finished:
        return
    how = "closed" if code == 0 else f"stopped with exit code {code}"
    if session.cfg.human and not session.state.pretrained:
        what = f"before the first {n} labels were in; training waits for them: {reopen}"
    else:
        what = f"; training goes on with the labels it has: {reopen}"
    print(f"\npbrl: the labelling window {how} {what}".replace(" ;", ";"), file=sys.stderr, flush=True)


def cmd_train(args: argparse.Namespace) -> int:
    from pbrl.finite import NonFiniteError
    from pbrl.loop import PreferenceRun

    run = RunDir(args.run_dir)
    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)
             if hasattr(args, f.name) and f.name not in ("run_dir", "ppo", "env_kwargs")}
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
        cfg = TrainConfig(run_dir=args.run_dir, **family_defaults(given.get("env_id", TrainConfig.env_id), given))
        cfg.ppo = ppo_overrides(cfg.env_id, args.ppo, cfg.ppo_preset)
        cfg.sources = value_sources(cfg.env_id, given, _key_values("--ppo", args.ppo),
                                    ppo_preset(cfg.env_id, cfg.ppo_preset)[1])
        cfg.env_kwargs = _key_values("--env-kwargs", args.env_kwargs_items) or None
        _check_env(cfg.env_id, cfg.episode_steps, cfg.env_kwargs)  # the env first: the other checks depend on it
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
    session = PreferenceRun(cfg, run, resume=True) if args.resume and not restart else \
        PreferenceRun.create(cfg, restart=restart)
    if changed:  # under the run's lock, which the session holds: the run's record says how it went on
        cfg.save(run.config)
        print(f"pbrl: resuming with {', '.join(f'{k}={v}' for k, v in sorted(changed.items()))} from now on",
              file=sys.stderr)
    window = None
    if cfg.human:
        if args.ui:
            import subprocess
            import threading

            window = subprocess.Popen([sys.executable, "-m", "pbrl", "label", "--run-dir", str(run.path)])
            threading.Thread(target=_watch_window, args=(window, session), daemon=True).start()
        else:
            print(f"pbrl: queries go to {run.store}; answer them with:  pbrl label --run-dir {run.path}",
                  file=sys.stderr, flush=True)
    try:
        metrics = session.run(progress=not args.no_progress)
    except NonFiniteError as exc:
        raise UsageError(f"{exc}; nothing non-finite was saved: once the cause is fixed, pbrl train --resume "
                         f"--run-dir {run.path} goes on from the last checkpoint") from None
    finally:
        session.close()
        if window is not None and window.poll() is None:
            print("pbrl: training is over; the labelling window stays open until you close it", file=sys.stderr)
    if args.video:
        from pbrl.video import record_run_video

        metrics["video"] = record_run_video(run.path, run.path / "policy.mp4")["video"]
    print(json.dumps(metrics, indent=2))
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from pbrl.evaluation import EVAL_COMMAND_SEED, load_saved_policy, policy_report

    run = RunDir(args.run_dir)
    run.check_existing()
    if args.episodes <= 0:
        raise UsageError(f"--episodes must be a positive number, got {args.episodes}")
    cfg, model, obs_rms = load_saved_policy(run)
    report = policy_report(model, cfg.env_id, args.episodes, cfg.seed + EVAL_COMMAND_SEED, obs_rms,
                           deterministic=not args.stochastic, max_episode_steps=cfg.eval_steps,
                           env_kwargs=cfg.env_kwargs)
    print(json.dumps({"env_id": cfg.env_id, "reward": cfg.reward, **report}, indent=2))
    return 0


def cmd_label(args: argparse.Namespace) -> int:
    import getpass
    import time

    from pbrl.ui import require_pygame

    require_pygame()
    if args.size is not None and args.size < 32:
        raise UsageError(f"--size must be at least 32 pixels, got {args.size}")
    if args.lease_s <= 0:
        raise UsageError(f"--lease-s must be a positive number of seconds, got {args.lease_s}")
    run = RunDir(args.run_dir)
    if not run.holds_run():
        print(f"pbrl: no run in {run.path} yet; waiting for  pbrl train --labeler human --run-dir {run.path}  "
              "(Ctrl-C to stop)", file=sys.stderr, flush=True)
        try:
            while not run.holds_run():
                time.sleep(1.0)
        except KeyboardInterrupt:
            return 130
    run.check_whole()
    cfg = TrainConfig.load(run.config)
    if not cfg.learned:
        raise UsageError(f"{run.path} trains on the true reward; it asks no questions")
    from pbrl.ui.app import LabelApp, Layout, NoScreen, default_clip_height, screen_size
    from pbrl.ui.render import AutoRenderer, clip_shape_for
    from pbrl.ui.session import LabelSession

    height, width = clip_shape_for(cfg.env_id, 100)
    try:
        screen = screen_size()
    except NoScreen as exc:
        raise UsageError(str(exc)) from None
    aspect = width / height
    size = default_clip_height(screen, aspect) if args.size is None else args.size
    window = Layout.window_for(size, aspect)
    if args.size is not None and (window[0] > screen[0] or window[1] > screen[1]):
        raise UsageError(f"--size {size} needs a {window[0]}x{window[1]} window, larger than this screen "
                         f"({screen[0]}x{screen[1]}); use --size {default_clip_height(screen, aspect)} or leave it out "
                         "(the window can be resized)")
    name = args.name or getpass.getuser()
    session = LabelSession(run.store, name,
                           lambda: AutoRenderer(cfg.env_id, size, cfg.episode_steps, cfg.env_kwargs),
                           lease_s=args.lease_s)
    app = LabelApp(run.path, session, instructions=cfg.instructions if args.instructions is None else args.instructions,
                   clip_size=size, clip_aspect=aspect)
    try:
        app.run()
    except KeyboardInterrupt:
        app.close()
    summary = app.summary()
    print(json.dumps({"labeler": name, **summary, "log": str(app.log_path)}), flush=True)
    return 0


def run_status(run: RunDir) -> dict[str, Any]:
    from pbrl.store import PreferenceStore

    run.check_whole()
    cfg = TrainConfig.load(run.config)
    state = run.read_json(run.pinned().state)
    with PreferenceStore(run.store, readonly=True) as store:  # status only reads, also another user's run
        counts = store.counts()
    out: dict[str, Any] = {
        "run_dir": str(run.path), "env_id": cfg.env_id, "reward": cfg.reward, "labeler": cfg.labeler,
        "timesteps": state["num_timesteps"], "total_timesteps": cfg.total_timesteps, "round": state["round"],
        "n_labels": counts.n_labels, "n_pending": counts.n_pending, "n_leased": counts.n_leased,
        "n_incomparable": counts.n_incomparable,
        "label_budget": cfg.n_labels,
        "reward_model_val_accuracy": state.get("last_fit", {}).get("val_accuracy"),
        "reward_model_val_tie_share": state.get("last_fit", {}).get("val_tie_share"),
        "wall_time_s": state["wall_time_s"], "finished": run.metrics.exists(),
    }
    last_round = state.get("last_round", {})  # absent in runs checkpointed by older code
    if "ep_true_return" in last_round:  # mean true return of the last 100 training episodes
        out["training_true_return"] = last_round["ep_true_return"]
    if "learned_true_return_corr" in last_round:
        out["learned_true_return_corr"] = last_round["learned_true_return_corr"]
    if last_round.get("steps_per_s") and not out["finished"]:  # at the last round's pace, labelling included
        out["eta_s"] = max(cfg.total_timesteps - state["num_timesteps"], 0) / last_round["steps_per_s"]
    lines = _json_lines(run.evals)
    # with --eval-every: the latest evaluation, and the best one (its policy is kept in RUN_DIR/best)
    for key, report in (("last_eval", lines[-1] if lines else {}), ("best_eval", state.get("best_eval"))):
        if report:
            out[key] = {k: report[k] for k in ("num_timesteps", "eval_true_return_mean", "eval_true_return_std",
                                               "game_score_mean") if k in report}  # game_score_mean: Atari, newer runs
    if run.metrics.exists():
        out["eval_true_return_mean"] = run.read_json(run.metrics).get("eval_true_return_mean")
    return out


def _json_lines(path) -> list[dict[str, Any]]:
    """The whole lines of a JSON-lines file (a line a kill cut short is left out)."""
    out = []
    for line in path.read_text().splitlines() if path.exists() else []:
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


def cmd_video(args: argparse.Namespace) -> int:
    from pbrl.video import VideoError, record_run_video

    if args.episodes <= 0:
        raise UsageError(f"--episodes must be a positive number, got {args.episodes}")
    if args.size < 16:
        raise UsageError(f"--size must be at least 16 pixels, got {args.size}")
    if args.max_steps is not None and args.max_steps <= 0:
        raise UsageError(f"--max-steps must be a positive number, got {args.max_steps}")
    out = args.out or str(RunDir(args.run_dir).path / "policy.mp4")
    try:
        info = record_run_video(args.run_dir, out, args.episodes, args.size, args.max_steps)
    except VideoError as exc:
        raise UsageError(str(exc)) from None
    print(json.dumps(info, indent=2))
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    print(json.dumps(run_status(RunDir(args.run_dir)), indent=2))
    return 0


#: The embedded default of ``pbrl demo``: minutes on 2 cores, long enough for both agents to leave random behind.
DEMO = {"env_id": "HalfCheetah-v5", "total_timesteps": 100_000, "n_labels": 200}


def _demo_worker(cfg_json: str, position: int) -> dict[str, Any]:
    from pbrl.loop import PreferenceRun

    session = PreferenceRun.create(TrainConfig.from_json(cfg_json))
    try:
        return session.run(progress=True, position=position)
    finally:
        session.close()


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def cmd_demo(args: argparse.Namespace) -> int:
    import time
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    import numpy as np

    from pbrl.evaluation import random_returns

    root = RunDir(args.run_dir or f"runs/demo-{time.strftime('%Y%m%d-%H%M%S')}")
    root.check_new()
    configs = []
    for reward in ("learned", "true"):
        cfg = TrainConfig(env_id=args.env_id, reward=reward, n_labels=args.n_labels, seed=args.seed,
                          total_timesteps=args.total_timesteps, eval_episodes=args.eval_episodes,
                          run_dir=str(root.path / reward), label_interval=max(args.total_timesteps // 20, 1))
        cfg.ppo = ppo_overrides(cfg.env_id, [])
        cfg.validate()
        configs.append(cfg.resolve())
    _check_env(args.env_id, None)
    print(f"pbrl demo: {args.env_id}, {args.total_timesteps} PPO steps per agent, {args.n_labels} synthetic labels; "
          f"runs in {root.path}", flush=True)
    with ProcessPoolExecutor(max_workers=2, mp_context=get_context("spawn")) as pool:
        futures = [pool.submit(_demo_worker, cfg.to_json(), i) for i, cfg in enumerate(configs)]
        learned, true = (f.result() for f in futures)
    rand = random_returns(args.env_id, args.eval_episodes, seed=args.seed + 30_000)
    rows = [("random actions", float(np.mean(rand)), float(np.std(rand)), ""),
            ("PPO on the learned reward", learned["eval_true_return_mean"], learned["eval_true_return_std"],
             f"{learned['n_labels']} labels, reward-model val acc {_fmt(learned['reward_model_val_accuracy'])}, "
             f"learned/true return corr {_fmt(learned['learned_true_return_corr'])} (held-out segments)"),
            ("PPO on the true reward", true["eval_true_return_mean"], true["eval_true_return_std"], "")]
    print(f"\ntrue return over {args.eval_episodes} episodes ({args.env_id}, {args.total_timesteps} steps, "
          f"seed {args.seed}):")
    for name, mean, std, note in rows:
        print(f"  {name:<27} {mean:>9.1f} ± {std:<7.1f} {note}")
    span = true["eval_true_return_mean"] - float(np.mean(rand))
    if span > 0:
        share = (learned["eval_true_return_mean"] - float(np.mean(rand))) / span
        print(f"  the learned-reward agent closes {100 * share:.0f}% of the gap from random to true-reward PPO")
    return 0




def _stopped(args: argparse.Namespace) -> str:
    """What a Ctrl-C leaves behind, in one line."""
    if args.command != "train":
        return "pbrl: stopped"
    run = RunDir(args.run_dir)
    if run.holds_run():
        return f"pbrl: stopped; continue from the last checkpoint with: pbrl train --resume --run-dir {run.path}"
    if run.never_checkpointed():
        return f"pbrl: stopped before the first checkpoint; start it afresh: pbrl train --resume --run-dir {run.path}"
    return "pbrl: stopped before the run was written"


def _exit_on_ctrl_c(args: argparse.Namespace):
    """A SIGINT handler that ends the command at once with one line. A run is written so that a kill at any instant
    leaves it resumable, so there is nothing to clean up; a KeyboardInterrupt instead could land where Python only
    prints it and goes on (an import's cleanup callback), or print a traceback from the middle of an import."""

    def handler(signum, frame) -> None:
        os.write(2, f"\n{_stopped(args)}\n".encode())
        os._exit(130)

    return handler


def cmd_presets(args: argparse.Namespace) -> int:
    from pbrl.envs import validate_env_id
    from pbrl.families import FAMILIES, PPO_BASE, default_preset, preset_names, task_of

    validate_env_id(args.env)  # a mistyped id is one line with the ids it may have meant, not "family other"
    task = task_of(args.env)
    family = FAMILIES[task.family]
    print(f"{args.env}: family {family.name} ({family.about})")
    print(f"  true reward: {task.true_reward}")
    method = family_defaults(args.env, {})
    if method:
        print("  method settings (over the defaults of `pbrl train --help`): "
              + ", ".join(f"{k}={v}" for k, v in sorted(method.items())))
    first = default_preset(args.env)
    for name in sorted(preset_names(args.env), key=lambda n: n != first):
        settings, source = ppo_preset(args.env, name)
        changed = {k: v for k, v in settings.items() if PPO_BASE.get(k) != v}
        mark = " (default)" if name == first else ""
        print(f"  --ppo-preset {name}{mark}: {source}")
        print("      " + (", ".join(f"{k}={json.dumps(v)}" for k, v in sorted(changed.items())) or "SB3's defaults"))
    return 0


COMMANDS = {"train": cmd_train, "eval": cmd_eval, "status": cmd_status, "presets": cmd_presets, "demo": cmd_demo,
            "label": cmd_label, "video": cmd_video}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["bench"]:  # its own parser (a spec file or flags, and `bench report`)
        from pbrl.bench import main as bench_main

        return bench_main(argv[1:])
    args = build_parser().parse_args(argv)
    # the window and the demo keep Python's KeyboardInterrupt: the window gives its pairs back on the way out
    on_ctrl_c = signal.default_int_handler if args.command in ("label", "demo") else _exit_on_ctrl_c(args)
    previous = signal.signal(signal.SIGINT, on_ctrl_c)
    try:
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print(f"\n{_stopped(args)}", file=sys.stderr)
        return 130
    except (UserError, MissingExtra) as exc:  # config, run dir, store, env, usage: one line each
        print(f"pbrl: error: {exc}", file=sys.stderr)
        return 2
    finally:
        signal.signal(signal.SIGINT, previous)


if __name__ == "__main__":
    sys.exit(main())
