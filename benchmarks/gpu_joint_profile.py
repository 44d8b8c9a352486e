"""Where a joint training step's time goes. On a lent H100 the MVSA-Single joint runs trained at only
148-440 samples/s with at most 1.5 GB of GPU memory used (docs/speed.md): this splits that time into the
host pipeline alone (tokenising, decoding, transforms, in DataLoader workers as the trainer runs them
without --image-cache), the step alone on batches already on the device (with and without reading the loss
every step, which makes the host wait for the GPU, as the trainer's loop does), and both together, side by
side in one run.

Usage: python benchmarks/gpu_joint_profile.py [--device cuda] [--n 1024] [--batch-size 16] [--workers 8]
MiniLM-L6 + EfficientNet-Lite0 (their offline weights), concat head, real MVSA-Single posts
(../shared/data/mvsa_single). On a CPU it runs too (small --n), to check the script, not for figures.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mvsa_single"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--n", type=int, default=1024)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--workers", type=int)
    args = parser.parse_args()

    from jftzoo.datasets.mvsa import read_single
    from jftzoo.fusion.heads import HeadConfig
    from jftzoo.fusion.registry import build_head
    from jftzoo.registry import get_encoder
    from jftzoo.train.model import FusionModel
    from jftzoo.train.pipeline import default_workers, plan_batches, preprocessed
    from jftzoo.train.trainer import autocast_for, to_device

    device = torch.device(args.device)
    workers = default_workers(device) if args.workers is None else args.workers
    records = read_single(DATA).records[: args.n]
    labels = sorted({r.label for r in records})
    index = {c: i for i, c in enumerate(labels)}
    torch.manual_seed(0)
    text, vision = get_encoder("minilm", pretrained=True), get_encoder("efficientnet_lite0", pretrained=True)
    head = build_head("concat", HeadConfig(n_classes=len(labels), text_dim=text.embed_dim,
                                           vision_dim=vision.embed_dim, text_token_dim=text.token_dim,
                                           vision_token_dim=vision.token_dim))
    model = FusionModel(text, vision, head).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-5)
    plan = plan_batches(len(records), args.batch_size, torch.Generator().manual_seed(0))
    pin = device.type == "cuda"

    def stream() -> Any:
        return preprocessed(model.preprocess, records, plan, index, workers, pin_memory=pin)

    def step(batch: Any, y: torch.Tensor, read_loss: bool) -> None:
        with autocast_for(device):
            logits = model(batch)  # (B, C)
        loss = F.cross_entropy(logits.float(), y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if read_loss:
            float(loss.detach())  # what the trainer does every step (running loss, progress, divergence check)

    model.train()
    for _, (_, batch, y) in zip(range(2), stream(), strict=False):  # warm-up: kernels, allocator, autotuning
        step(to_device(batch, device), y.to(device), True)
    _sync(device)
    timings: dict[str, float] = {}

    t = time.perf_counter()
    loaded = [(to_device(b, device), y.to(device)) for _, b, y in stream()]
    _sync(device)
    timings["host pipeline alone (+ copy to device)"] = time.perf_counter() - t
    for name, read in (("step alone, loss read every step", True), ("step alone, loss never read", False)):
        _sync(device)
        t = time.perf_counter()
        for batch, y in loaded:
            step(batch, y, read)
        _sync(device)
        timings[name] = time.perf_counter() - t
    t = time.perf_counter()
    for _, batch, y in stream():
        step(to_device(batch, device), y.to(device), True)
    _sync(device)
    timings["pipeline + step (the trainer's loop)"] = time.perf_counter() - t

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"{len(records)} MVSA-Single posts, batch {args.batch_size}, {workers} loader workers, {name}, "
          f"torch {torch.__version__}")
    base = timings["pipeline + step (the trainer's loop)"]
    for what, seconds in timings.items():
        print(f"  {what:42s} {len(records) / seconds:8.1f} samples/s  ({base / seconds:.2f}x the trainer's loop)")
    if device.type == "cuda":
        print(f"  peak GPU memory {torch.cuda.max_memory_allocated(device) / 2**20:.0f} MiB")


if __name__ == "__main__":
    main()
