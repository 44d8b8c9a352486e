"""What length-sorted batching buys `Encoder.embed`: the same texts embedded in sorted and in input
order, side by side in one run, with the packaged MiniLM weights.

Texts are the real MVSA-Single tweets when ../shared/data/mvsa_single exists (first N files),
otherwise the script stops and says so.

Usage: python benchmarks/embed_length_sorting.py [--n 1024] [--batch-size 32]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

import jftzoo

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mvsa_single" / "data"


def load_texts(n: int) -> list[str]:
    if not DATA.is_dir():
        raise SystemExit(f"MVSA-Single not found at {DATA}; see ../shared/data/README.md")
    files = sorted(DATA.glob("*.txt"), key=lambda p: int(p.stem))[:n]
    return [f.read_bytes().decode("utf-8", errors="replace").strip() for f in files]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=1024)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--encoder", default="minilm")
    args = parser.parse_args()
    torch.set_num_threads(torch.get_num_threads())
    texts = load_texts(args.n)
    enc = jftzoo.get_encoder(args.encoder)
    enc.embed(texts[:64], batch_size=args.batch_size)  # warm-up

    def run(sorted_: bool) -> tuple[float, torch.Tensor]:
        original = enc.sort_key
        if not sorted_:
            enc.sort_key = lambda item: 0  # type: ignore[method-assign]  # keep input order
        try:
            start = time.perf_counter()
            out = enc.embed(texts, batch_size=args.batch_size)
            return time.perf_counter() - start, out
        finally:
            enc.sort_key = original  # type: ignore[method-assign]

    unsorted_s, a = run(False)
    sorted_s, b = run(True)
    tokens = enc.preprocess(texts)["attention_mask"]
    print(f"encoder {args.encoder} ({enc.weight_source}), {len(texts)} MVSA-Single tweets, "
          f"batch {args.batch_size}, {torch.get_num_threads()} threads")
    print(f"tokens per text: mean {tokens.sum(1).float().mean():.1f}, max {int(tokens.sum(1).max())}")
    print("| batching | seconds | texts/s |")
    print("|---|---:|---:|")
    print(f"| input order | {unsorted_s:.2f} | {len(texts) / unsorted_s:.0f} |")
    print(f"| length-sorted (jftzoo) | {sorted_s:.2f} | {len(texts) / sorted_s:.0f} |")
    print(f"\nspeed-up {unsorted_s / sorted_s:.2f}x; max |difference| between the two {float((a - b).abs().max()):.2e}")


if __name__ == "__main__":
    main()
