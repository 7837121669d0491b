"""Videos of a run's saved policy: ``pbrl video`` and ``pbrl train --video``.

The deterministic policy plays ``episodes`` episodes; the simulator state of every step is rendered with the same
tracking camera as the labelling window's clips (``pbrl.envs.render``) and written with imageio: MP4 through the
ffmpeg binary that ``imageio-ffmpeg`` installs from the registries, GIF through Pillow. Frames are thinned to at
most ``MAX_FPS`` so the video plays in real time at a size people can share.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from pbrl.errors import UserError
from pbrl.extras import require
from pbrl.run_dir import RunDir
from pbrl.seeds import VIDEO_SEED

MAX_FPS = 32.0


class VideoError(UserError):
    """A video that cannot be written as asked, with what to do instead."""


def require_video_writer():
    """imageio (and, for MP4, its ffmpeg), or ``pbrl.extras.MissingExtra`` naming the video extra."""
    require("imageio_ffmpeg", "video", "writing videos")
    return require("imageio.v2", "video", "writing videos")


def write_video(frames: np.ndarray, out: Path, fps: float) -> None:
    """Write ``frames`` (T, H, W, 3) uint8 to ``out`` (.mp4 or .gif)."""
    imageio = require_video_writer()
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".gif":
        imageio.mimwrite(out, list(frames), duration=1000.0 / fps, loop=0)
    elif out.suffix == ".mp4":
        imageio.mimwrite(out, list(frames), fps=fps, macro_block_size=8)
    else:
        raise VideoError(f"--out must end in .mp4 or .gif, got {out.name!r}")


def record_run_video(run_dir: str | Path, out: str | Path, episodes: int = 1, size: int = 256,
                     max_steps: int | None = None, seed: int | None = None) -> dict[str, Any]:
    """Render ``episodes`` episodes of the run's deterministic policy to ``out``; returns what was written."""
    from pbrl.envs.render import ClipRenderer
    from pbrl.envs.wrappers import STATE_KEY
    from pbrl.evaluation import behaviour_keys, behaviour_summary, load_saved_policy, rollout_infos

    out = Path(out)
    if out.suffix not in (".mp4", ".gif"):
        raise VideoError(f"--out must end in .mp4 or .gif, got {out.name!r}")
    require_video_writer()
    cfg, model, obs_rms = load_saved_policy(RunDir(run_dir))
    seed = cfg.seed + VIDEO_SEED if seed is None else seed
    try:
        renderer = ClipRenderer(cfg.env_id, size, cfg.episode_steps, cfg.env_kwargs)
    except ValueError as exc:
        raise VideoError(str(exc)) from None
    try:
        eps = rollout_infos(model, cfg.env_id, episodes, seed, obs_rms, [STATE_KEY, *behaviour_keys(cfg.env_id)],
                            max_episode_steps=cfg.eval_steps, env_kwargs=cfg.env_kwargs)
        every = max(1, math.ceil(renderer.fps / MAX_FPS))
        states = np.concatenate([e[STATE_KEY][:max_steps] for e in eps])[::every]
        frames = renderer.render_states(states)
        fps = renderer.fps / every
    finally:
        renderer.close()
    write_video(frames, out, fps)
    info: dict[str, Any] = {"video": str(out), "frames": len(frames), "fps": round(fps, 2), "episodes": episodes,
                            "returns": [round(float(e["return"]), 3) for e in eps]}
    info.update(behaviour_summary(cfg.env_id, eps))  # from the episodes just recorded
    return info
