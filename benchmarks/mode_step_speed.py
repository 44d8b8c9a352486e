"""Training samples/s of the real offline pair (minilm + efficientnet_lite0, pre-trained) in `top-k`
and `joint` mode, side by side in one run, and the minutes one epoch of MVSA-Single's training part
would take at that speed. This is the figure behind benchmarks/mvsa_heads.py using `top-k` rather
than `joint` as its second mode on 2 CPU cores.

Usage: HF_HUB_OFFLINE=1 python benchmarks/mode_step_speed.py [--batch-size 16] [--steps 4] [--top-k 2]
Posts are real MVSA-Single tweets and images when ../shared/data/mvsa_single exists.
"""

from __future__ import annotations

import argparse

import torch
from joint_step_speed import load_posts, time_steps

import jftzoo
from jftzoo.fusion.heads import HeadConfig
from jftzoo.fusion.registry import build_head
from jftzoo.train.model import FusionModel

MVSA_TRAIN = 3607  # records in the training part of benchmarks/mvsa_heads.py's 8:1:1 split


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--top-k", type=int, default=2)
    args = parser.parse_args()
    torch.manual_seed(0)
    text, vision = jftzoo.get_encoder("minilm"), jftzoo.get_encoder("efficientnet_lite0")
    cfg = HeadConfig(3, text.embed_dim, vision.embed_dim, text.token_dim, vision.token_dim)
    model = FusionModel(text, vision, build_head("attention", cfg))
    bs = args.batch_size
    texts, images = load_posts(bs * (args.steps + 1))
    batches = [model.preprocess(texts[i : i + bs], images[i : i + bs]) for i in range(0, len(texts), bs)]
    labels = torch.arange(bs) % 3
    rows = []
    for mode in ("top-k", "joint"):
        model.set_mode(mode, args.top_k)
        trainable = sum(p.numel() for p in model.encoder_parameters() if p.requires_grad)
        rate = args.steps * bs / time_steps(model, batches, labels, args.steps)  # after 1 warm-up step
        rows.append((mode, trainable, rate))
    print(f"minilm + efficientnet_lite0 (pre-trained), attention head, batch {bs}, "
          f"{torch.get_num_threads()} threads, {args.steps} timed steps per mode (after 1 warm-up step)")
    print("| mode | trainable encoder parameters | samples/s | one MVSA-Single epoch (3,607 records) |")
    print("|---|---:|---:|---:|")
    for mode, trainable, rate in rows:
        label = f"top-k (k={args.top_k})" if mode == "top-k" else mode
        print(f"| {label} | {trainable:,} | {rate:.2f} | {MVSA_TRAIN / rate / 60:.1f} min |")
    print(f"\ntop-k / joint speed: {rows[0][2] / rows[1][2]:.2f}x")


if __name__ == "__main__":
    main()
