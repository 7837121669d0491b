"""Memory and time of keeping labelled Atari pairs packed (``pbrl.reward.frames``) against stacking them whole.

    python scripts/speed/bench_packed_frames.py --pairs 1000 --out results/atari/packed_frames

Plays Pong with uniform random actions, cuts 25-step segments (the loop's own ``cut_segments``), pairs them, and
holds ``--pairs`` pairs two ways in this one process: stacked as the reward model's training array (N, 2, 25, 4, 84,
84) uint8, as every fit built it before, and as ``PackedPairs``. It prints the bytes of each and their ratio, the
seconds to pack them all, and the seconds to unpack one minibatch as the trainer draws it (3 members x 16 pairs)
against indexing the stacked array for the same batch. With ``--device`` it also times a minibatch's trip to that
device both ways the fit can take: unpacked in main memory and copied over, or gathered from the frame table
that a GPU fit builds once on the device (``PackedPairs.frame_table``), and the table's build time and size.
Random play scores rarely, so the frames are busier than a trained agent's are only where the ball moves; the
ratio is for what these frames compress to.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from pbrl.envs import make_env
from pbrl.reward.frames import PackedObs, PackedPairs
from pbrl.segments import RolloutRecord, cut_segments

SEGMENT_LENGTH = 25


def pong_segments(n: int, seed: int) -> list[np.ndarray]:
    """``n`` segments' observations (25, 4, 84, 84) from random play, one env, 2,000-step episodes."""
    env = make_env("ALE/Pong-v5", seed=seed, max_episode_steps=2000)
    env.action_space.seed(seed)
    rng = np.random.default_rng(seed)
    out: list[np.ndarray] = []
    obs, _ = env.reset(seed=seed)
    while len(out) < n:
        chunk = []
        for _ in range(SEGMENT_LENGTH * 40):
            chunk.append(obs)
            obs, _, terminated, truncated, _ = env.step(env.action_space.sample())
            if terminated or truncated:
                obs, _ = env.reset()
                break
        t = len(chunk)
        rec = RolloutRecord(obs=np.stack(chunk)[:, None], acts=np.zeros((t, 1, 1), np.float32),
                            true_rews=np.zeros((t, 1)), dones=np.zeros((t, 1), bool), episodes=np.zeros((t, 1), int),
                            env_steps=np.zeros((t, 1), int), states=None, policy_step=0)
        out += [s.obs for s in cut_segments(rec, SEGMENT_LENGTH, rng)]
    env.close()
    return out[:n]


def device_timings(packed: PackedPairs, batches: list[np.ndarray], device_name: str) -> dict[str, object]:
    """Per minibatch on ``device_name``: unpack in main memory and copy, against a gather from the frame table."""
    import torch

    device = torch.device(device_name)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def timed(fn) -> tuple[float, torch.Tensor]:
        """Seconds per minibatch of ``fn`` over the batches, and its last output."""
        sync()
        t0 = time.perf_counter()
        for idx in batches:
            out = fn(idx)
        sync()
        return (time.perf_counter() - t0) / len(batches), out

    copy_s, copied = timed(lambda idx: torch.from_numpy(packed[idx]).to(device))
    t0 = time.perf_counter()
    frames, index = packed.frame_table(device)
    sync()
    build_s = time.perf_counter() - t0
    gather_s, gathered = timed(lambda idx: frames[index[torch.as_tensor(idx, device=device)]])
    assert torch.equal(copied, gathered), "the frame table must give exactly the unpacked pairs"
    return {"name": str(device), "table_mib": round(frames.numel() / 2**20, 1), "table_build_s": round(build_s, 2),
            "minibatch_ms": {"unpack_and_copy": round(copy_s * 1e3, 2), "table_gather": round(gather_s * 1e3, 3)},
            "copy_over_gather": round(copy_s / gather_s, 1)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pairs", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batches", type=int, default=20, help="minibatches timed")
    p.add_argument("--device", default="", help="also time minibatches reaching this torch device (cpu, cuda)")
    p.add_argument("--out", default="")
    a = p.parse_args()
    segs = pong_segments(2 * a.pairs, a.seed)
    stacked = np.stack([np.stack([segs[2 * i], segs[2 * i + 1]]) for i in range(a.pairs)])
    t0 = time.perf_counter()
    packed = PackedPairs([(PackedObs(segs[2 * i]), PackedObs(segs[2 * i + 1])) for i in range(a.pairs)])
    pack_s = time.perf_counter() - t0
    rng = np.random.default_rng(a.seed)
    batches = [rng.integers(0, a.pairs, size=(3, 16)) for _ in range(a.batches)]
    t0 = time.perf_counter()
    for idx in batches:
        _ = stacked[idx]
    index_s = (time.perf_counter() - t0) / a.batches
    t0 = time.perf_counter()
    for idx in batches:
        got = packed[idx]
    unpack_s = (time.perf_counter() - t0) / a.batches
    assert np.array_equal(got, stacked[batches[-1]]), "packed pairs must unpack to exactly the stacked ones"
    result = {
        "command": "python " + " ".join(sys.argv), "pairs": a.pairs,
        "stacked_mib": round(stacked.nbytes / 2**20, 1), "packed_mib": round(packed.nbytes / 2**20, 2),
        "stacked_over_packed": round(stacked.nbytes / packed.nbytes, 1),
        "pack_all_s": round(pack_s, 2),
        "minibatch_ms": {"stacked_index": round(index_s * 1e3, 2), "packed_unpack": round(unpack_s * 1e3, 2)},
        "unpack_over_index": round(unpack_s / index_s, 2),
    }
    if a.device:
        result["device"] = device_timings(packed, batches, a.device)
    print(json.dumps(result, indent=2))
    if a.out:
        out = Path(a.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
