"""Samples/s of one joint training step (DistilBERT + ResNet-50, attention head, both encoders
training) in jftzoo's trainer path against a faithful re-implementation of the paper's recipe, in
which every text is padded to 512 tokens. Random weights: this times the arithmetic, not accuracy.

Usage: python benchmarks/joint_step_speed.py [--batch-size 8] [--steps 3] [--n 64]
Texts are real MVSA-Single tweets when ../shared/data/mvsa_single exists.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image

import jftzoo
from jftzoo.fusion.heads import HeadConfig
from jftzoo.fusion.registry import build_head
from jftzoo.train.model import FusionModel

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mvsa_single" / "data"


def load_posts(n: int) -> tuple[list[str], list[Image.Image]]:
    if DATA.is_dir():
        ids = sorted(int(p.stem) for p in DATA.glob("*.txt"))[:n]
        texts = [(DATA / f"{i}.txt").read_bytes().decode("utf-8", "replace").strip() for i in ids]
        images = [Image.open(DATA / f"{i}.jpg").convert("RGB") for i in ids]
        return texts, images
    return [f"post number {i} is about a day at the beach" for i in range(n)], [Image.new("RGB", (256, 256))] * n


def time_steps(model: FusionModel, batches: list[dict], labels: torch.Tensor, steps: int) -> float:
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5)
    model.train()
    for batch in batches[:1]:  # warm-up
        F.cross_entropy(model(batch), labels).backward()
        opt.step()
        opt.zero_grad()
    start = time.perf_counter()
    for i in range(steps):
        loss = F.cross_entropy(model(batches[i % len(batches)]), labels)
        loss.backward()
        opt.step()
        opt.zero_grad()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--n", type=int, default=64)
    args = parser.parse_args()
    torch.manual_seed(0)
    text, vision = jftzoo.get_encoder("distilbert", pretrained=False), jftzoo.get_encoder("resnet50", pretrained=False)
    cfg = HeadConfig(3, text.embed_dim, vision.embed_dim, text.token_dim, vision.token_dim)
    model = FusionModel(text, vision, build_head("attention-paper", cfg))
    model.set_mode("joint")
    texts, images = load_posts(args.n)
    bs = args.batch_size
    chunks = [(texts[i : i + bs], images[i : i + bs]) for i in range(0, args.n - bs + 1, bs)]
    ours = [model.preprocess(t, im) for t, im in chunks]  # dynamic padding: longest in the batch
    paper = []
    for t, im in chunks:  # the paper's recipe: every text padded to 512 tokens
        enc = text.tokenizer(t, padding="max_length", truncation=True, max_length=512, return_tensors="pt")
        paper.append({"text": {k: enc[k] for k in ("input_ids", "attention_mask")}, "vision": vision.preprocess(im)})
    labels = torch.zeros(bs, dtype=torch.long)
    t_paper = time_steps(model, paper, labels, args.steps)
    t_ours = time_steps(model, ours, labels, args.steps)
    mean_len = sum(b["text"]["input_ids"].shape[1] for b in ours) / len(ours)
    print(f"distilbert + resnet50 (random weights), attention-paper head, joint mode, batch {bs}, "
          f"{torch.get_num_threads()} threads, {args.steps} timed steps each")
    print("| recipe | text length | samples/s |")
    print("|---|---:|---:|")
    print(f"| paper (pad to 512) | 512 | {args.steps * bs / t_paper:.2f} |")
    print(f"| jftzoo (dynamic padding) | {mean_len:.0f} (mean of batch maxima) | {args.steps * bs / t_ours:.2f} |")
    print(f"\nspeed-up {t_paper / t_ours:.2f}x")


if __name__ == "__main__":
    main()
