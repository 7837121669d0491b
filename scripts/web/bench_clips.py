"""How fast ``pbrl serve`` makes clips: Hopper-v5 segments rendered from their saved states and encoded as H.264.

    .venv/bin/python scripts/web/bench_clips.py --pairs 24 --size 256 --out results/web/clip_encoding

A page's labeler needs two clips per pair (fewer where pairs share segments); the server makes them ahead, in its
clip cache's worker threads. This makes a small Hopper run with people as the labeler, asks ``--pairs`` questions
and times one cache worker encoding every pending segment, batch by batch, as ``pbrl serve`` does: clips a second
is how many pairs a second the server can keep ready for its labelers on this machine.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from pbrl import TrainConfig
from pbrl.loop import PreferenceRun
from pbrl.store import PreferenceStore
from pbrl.ui.render import AutoRenderer
from pbrl.web.clips import ClipCache


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pairs", type=int, default=24)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--out", default="results/web/clip_encoding")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "hop"
        cfg = TrainConfig.of(env_id="Hopper-v5", labeler="human", n_labels=700, seed=0, run_dir=str(run_dir),
                             segment_buffer_size=4 * args.pairs).resolve()
        run = PreferenceRun.create(cfg)
        run.collect_initial_segments()
        run.ask(args.pairs)
        run.close()
        with PreferenceStore(run_dir / "preferences.sqlite", readonly=True) as store:
            segments = store.pending_segment_ids(args.pairs)
        cache = ClipCache(run_dir / "web_clips", run_dir / "preferences.sqlite",
                          lambda: AutoRenderer(cfg.env_id, args.size, cfg.episode_steps), n_workers=args.workers)
        t0 = time.perf_counter()
        cache.start()
        while any(cache.cached(s) is None for s in segments):
            time.sleep(0.05)
        wall = time.perf_counter() - t0
        cache.close()
        clips = [cache.cached(s) for s in segments]
        sizes = [c.path.stat().st_size for c in clips]
    figures = {
        "env": "Hopper-v5", "size_px": args.size, "workers": args.workers, "pairs": args.pairs,
        "clips": len(clips), "frames_per_clip": clips[0].n_frames, "fps": clips[0].fps,
        "wall_s": round(wall, 2), "clips_per_s": round(len(clips) / wall, 2),
        "pairs_per_s": round(args.pairs / wall, 2), "mean_kb": round(sum(sizes) / len(sizes) / 1024, 1),
        "note": "wall time includes building the renderer (the MuJoCo model and its GL context) once",
        "machine": {"cpus": os.cpu_count(), "load_average": round(os.getloadavg()[0], 1)},
        "command": " ".join([os.path.relpath(sys.executable), "scripts/web/bench_clips.py", *sys.argv[1:]]),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
