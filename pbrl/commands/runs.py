"""The commands that read a run: ``pbrl eval``, ``label``, ``status``, ``video`` and ``presets``."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from pbrl.config import TrainConfig, family_defaults
from pbrl.errors import UsageError
from pbrl.run_dir import RunDir


def cmd_eval(args: argparse.Namespace) -> int:
    from pbrl.evaluation import load_saved_policy, policy_report
    from pbrl.seeds import EVAL_COMMAND_SEED

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


def cmd_presets(args: argparse.Namespace) -> int:
    from pbrl.envs import validate_env_id
    from pbrl.families import FAMILIES, PPO_BASE, default_preset, ppo_preset, preset_names, task_of

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
