"""Pictures of the Atari score masks: for each game, the screen with the masked rectangles outlined in red,
the screen as masked, and the 84x84 grey input the reward model sees.

    python scripts/tools/atari_masks.py --out docs/atari_masks

Frames come from a few hundred steps of random play with a fixed seed, so the score is on screen.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from pbrl.envs.atari import GAMES, SCORE_MASKS, make_atari, mask_frame, to_84


def outlined(frame: np.ndarray, rects) -> np.ndarray:
    out = frame.copy()
    for r0, r1, c0, c1 in rects:
        r1, c1 = min(r1, 210) - 1, min(c1, 160) - 1
        out[r0, c0:c1 + 1] = out[r1, c0:c1 + 1] = (255, 0, 0)
        out[r0:r1 + 1, c0] = out[r0:r1 + 1, c1] = (255, 0, 0)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="docs/atari_masks")
    p.add_argument("--steps", type=int, default=300)
    a = p.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    for game in GAMES:
        env = make_atari(f"ALE/{game}-v5")
        env.reset(seed=0)
        env.action_space.seed(0)
        for _ in range(a.steps):
            env.step(env.action_space.sample())
        raw = env.unwrapped.ale.getScreenRGB()  # the emulator's own frame, score visible
        grey = np.repeat(to_84(mask_frame(raw, SCORE_MASKS[game]))[..., None], 3, axis=2)
        grey = np.asarray(Image.fromarray(grey).resize((160, 160), Image.NEAREST))
        pad = np.zeros((210, 8, 3), np.uint8)
        panel = np.concatenate([outlined(raw, SCORE_MASKS[game]), pad, mask_frame(raw, SCORE_MASKS[game]), pad,
                                np.pad(grey, ((25, 25), (0, 0), (0, 0)))], axis=1)
        Image.fromarray(panel).resize((panel.shape[1] * 2, panel.shape[0] * 2), Image.NEAREST).save(out / f"{game}.png")
        env.close()
        print(out / f"{game}.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
