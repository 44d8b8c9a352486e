"""Fine-tuning speed on real MVSA-Single records: every speed option against today's path, in one run.

Modes (MiniLM-L6 + EfficientNet-Lite0, pre-trained; with --paper-pair also DistilBERT + ResNet-50
with RANDOM weights, the paper's pair, for the arithmetic only), each measured in a fresh process so
its peak RSS is its own:

  frozen            the head alone on cached frozen features (the encoder pass reported separately)
  frozen_image      EfficientNet-Lite0 frozen pass, contiguous vs channels_last (img/s, cosine)
  topk_uncached     top-k (k=2): every layer runs each step (prefix cache off)
  topk_cached       top-k (k=2): the frozen prefix once per record (reported separately), then the top only
  joint_baseline    joint, every speed option off: contiguous, no bucketing, in-step preprocessing
  joint             joint, every speed option at its default: channels_last, length bucketing, workers from
                    the core count (0 on a CPU whose cores torch's threads use: preprocessing in-process)
  joint_dataloader  as joint, with one DataLoader worker preprocessing beside the step
  reference         a plain PyTorch loop over the same joint model, every input prepared in advance
  reference_compiled  (--compile) the same loop through torch.compile; compile time reported apart

Steady state: samples/s over the LAST epoch of a fit (its training steps and its 8-record validation
pass), so set-up and first-epoch work (model building, the top-k prefix pass, reported separately)
are left out; the reference loop's last epoch likewise. Ratios: topk_cached_vs_uncached,
joint_vs_baseline, frozen_image_vs_baseline, joint_vs_reference; and topk_cached_ceiling: what
cached/uncached would be if an uncached epoch cost exactly a cached epoch plus running the prefix
(the prefix's share of the work bounds what caching it can save).

Usage: python benchmarks/finetune_speed.py [--quick] [--n 256] [--epochs 2] [--top-k 2] [--paper-pair]
--quick runs a reduced version (under 3 minutes) and prints the same keys as one JSON object last.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "mvsa_single"
PAIRS = {"offline": ("minilm", "efficientnet_lite0", True), "paper": ("distilbert", "resnet50", False)}


def records(n: int) -> tuple[list[Any], list[Any], list[str], str]:
    from jftzoo.datasets import load_dataset

    data = f"mvsa-single:{DATA}" if DATA.is_dir() else "emoji-sentiment"
    ds = load_dataset(data)
    recs = sorted(ds.records, key=lambda r: r.id)[: n + 8]
    return recs[:n], recs[n:], list(ds.labels), ds.name


def build(pair: str, head: str = "concat") -> Any:
    import torch

    import jftzoo
    from jftzoo.fusion.heads import HeadConfig
    from jftzoo.fusion.registry import build_head
    from jftzoo.train.model import FusionModel

    text_name, vision_name, pretrained = PAIRS[pair]
    torch.manual_seed(0)
    text = jftzoo.get_encoder(text_name, pretrained=pretrained)
    vision = jftzoo.get_encoder(vision_name, pretrained=pretrained)
    cfg = HeadConfig(3, text.embed_dim, vision.embed_dim, text.token_dim, vision.token_dim)
    return FusionModel(text, vision, build_head(head, cfg))


def timed_fit(model: Any, train: list, val: list, labels: list[str], epochs: int, **options: Any) -> float:
    """Seconds of the fit's last epoch (its training steps and validation pass): the steady state, once
    set-up and the first epoch's one-time work are behind it; the whole fit when epochs == 1."""
    from jftzoo.train.trainer import TrainConfig, fit

    store = options.pop("_store", None)
    cfg = TrainConfig(min_epochs=epochs, max_epochs=epochs, batch_size=16, **options)
    marks = [time.perf_counter()]

    def progress(event: dict[str, Any]) -> None:
        if event["event"] == "epoch":
            marks.append(time.perf_counter())

    fit(model, train, labels, cfg, validation=val, prefix_store=store, progress=progress)
    return marks[-1] - marks[-2]


def measure(mode: str, pair: str, n: int, epochs: int, top_k: int = 2) -> dict[str, Any]:
    import torch

    train, val, labels, dataset = records(n)
    out: dict[str, Any] = {"mode": mode, "pair": pair, "dataset": dataset, "n": len(train), "epochs": epochs,
                           "threads": torch.get_num_threads()}
    model = build(pair)
    if mode == "frozen":
        from jftzoo.features import FeatureStore

        store = FeatureStore()
        t0 = time.perf_counter()
        for enc, items in ((model.text, [r.text for r in train + val]), (model.vision, [r.image for r in train + val])):
            store.features(enc, items)
        out["encode_s"] = time.perf_counter() - t0
        from jftzoo.train.trainer import TrainConfig, fit

        marks = [time.perf_counter()]
        fit(model, train, labels, TrainConfig(mode="frozen", min_epochs=epochs, max_epochs=epochs, batch_size=16),
            validation=val, features=store,
            progress=lambda e: marks.append(time.perf_counter()) if e["event"] == "epoch" else None)
        out["samples_per_s"] = len(train) / (marks[-1] - marks[-2])
    elif mode == "frozen_image":
        vision = model.vision
        images = [r.image for r in train]
        speeds, vecs = {}, {}
        for fmt in ("contiguous", "channels_last", "contiguous", "channels_last"):  # interleaved, best of 2
            vision.set_memory_format(fmt)
            t0 = time.perf_counter()
            vecs[fmt] = vision.embed(images, batch_size=32)
            speeds[fmt] = max(speeds.get(fmt, 0.0), len(images) / (time.perf_counter() - t0))
        cos = torch.nn.functional.cosine_similarity(vecs["contiguous"], vecs["channels_last"], dim=-1)
        out.update({"contiguous_img_per_s": speeds["contiguous"], "channels_last_img_per_s": speeds["channels_last"],
                    "min_cosine": float(cos.min()), "samples_per_s": speeds["channels_last"]})
    elif mode in ("topk_uncached", "topk_cached"):
        options: dict[str, Any] = {"mode": "top-k", "top_k": top_k, "lr_encoder": 2e-5}
        if mode == "topk_cached":
            from jftzoo.train.prefix import PrefixInputs, PrefixStore

            store = PrefixStore()
            model.set_mode("top-k", top_k)
            t0 = time.perf_counter()
            PrefixInputs(model, {"train": train, "val": val}, top_k, top_k, store)
            out["prefix_s"] = time.perf_counter() - t0
            out["prefix_mb"] = store.nbytes / 2**20
            options["_store"] = store
        else:
            options["prefix_cache"] = False
        out["samples_per_s"] = len(train) / timed_fit(model, train, val, labels, epochs, **options)
    elif mode in ("joint", "joint_baseline", "joint_dataloader"):
        options = {"mode": "joint"}  # joint: every speed option at its default
        if mode == "joint_dataloader":
            options["workers"] = 1
        if mode == "joint_baseline":
            model.vision.set_memory_format("contiguous")
            options.update(workers=0, bucketing=False)
        out["samples_per_s"] = len(train) / timed_fit(model, train, val, labels, epochs, **options)
    elif mode in ("reference", "reference_compiled"):
        import torch.nn.functional as F

        from jftzoo.train.pipeline import plan_batches

        plan = plan_batches(len(train), 16, torch.Generator().manual_seed(0), [len(r.text) for r in train])
        index = {c: i for i, c in enumerate(labels)}
        batches = [(model.preprocess([train[i].text for i in b], [train[i].image for i in b]),
                    torch.tensor([index[train[i].label] for i in b])) for b in plan]  # all prepared in advance
        model.set_mode("joint")
        model.train()
        opt = torch.optim.AdamW(model.parameters(), lr=2e-5)
        net = model
        if mode == "reference_compiled":  # torch.compile (inductor), dynamic shapes: text lengths vary by batch
            net = torch.compile(model, dynamic=True)
            t0 = time.perf_counter()
            batch, y = batches[0]
            F.cross_entropy(net(batch), y).backward()  # compiles forward and backward; its time apart
            opt.zero_grad(set_to_none=True)
            out["compile_s"] = time.perf_counter() - t0
        for _ in range(epochs):  # the last epoch is timed, like the fits'
            t0 = time.perf_counter()
            for batch, y in batches:
                loss = F.cross_entropy(net(batch), y)
                loss.backward()
                opt.step()
                opt.zero_grad(set_to_none=True)
        out["samples_per_s"] = len(train) / (time.perf_counter() - t0)
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def run_child(mode: str, pair: str, n: int, epochs: int, top_k: int) -> dict[str, Any]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, __file__, "--measure", mode, "--pair", pair, "--n", str(n), "--epochs",
                           str(epochs), "--top-k", str(top_k)], capture_output=True, text=True, env=env)
    if done.returncode != 0:
        sys.exit(f"{mode} ({pair}) failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--n", type=int, help="training records [256; 48 with --quick]")
    parser.add_argument("--epochs", type=int, default=2, help="per fit; the last one is timed [2]")
    parser.add_argument("--top-k", type=int, default=2, help="layer groups trained in the top-k modes [2]")
    parser.add_argument("--compile", action="store_true", help="also torch.compile the reference loop (slow)")
    parser.add_argument("--modes", help="only these modes, comma-separated (a partial run: prints their lines "
                                        "and a JSON object of what it measured)")
    parser.add_argument("--paper-n", type=int, default=64, help="training records for the paper pair [64]")
    parser.add_argument("--paper-pair", action="store_true", help="also DistilBERT + ResNet-50 (random weights)")
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    parser.add_argument("--pair", default="offline", help=argparse.SUPPRESS)
    args = parser.parse_args()
    n = args.n or (48 if args.quick else 256)
    if args.measure:
        print(json.dumps(measure(args.measure, args.pair, n, args.epochs, args.top_k)))
        return
    modes = ["frozen", "frozen_image", "topk_uncached", "topk_cached", "joint_baseline", "joint", "joint_dataloader",
             "reference"]
    modes += ["reference_compiled"] if args.compile else []
    if args.modes:
        only = [m.strip() for m in args.modes.split(",") if m.strip()]
        unknown = sorted(set(only) - set(modes) - {"reference_compiled"})
        if unknown:
            parser.error(f"unknown mode(s) {', '.join(unknown)}; known: {', '.join(modes)}")
        modes = only
    pairs = ["offline"] + (["paper"] if args.paper_pair and not args.quick else [])
    results = {}
    for pair in pairs:
        for mode in modes:
            if pair == "paper" and (mode.startswith("frozen") or mode == "reference_compiled"):
                continue
            size = args.paper_n if pair == "paper" else n
            results[(pair, mode)] = r = run_child(mode, pair, size, args.epochs, args.top_k)
            print(f"{pair:8s} {mode:15s} {r['samples_per_s']:8.2f} samples/s  peak RSS {r['peak_rss_mb']:7.0f} MB"
                  + "".join(f"  {k} {v:.3g}" for k, v in r.items() if k in ("encode_s", "prefix_s", "prefix_mb",
                                                                           "contiguous_img_per_s", "min_cosine",
                                                                           "compile_s")),
                  flush=True)
    o = {m: results[("offline", m)] for m in modes}
    if args.modes:  # a partial run: what was measured, and the top-k ratio when both top-k modes ran
        part: dict[str, Any] = {"n": n, "epochs": args.epochs, "top_k": args.top_k,
                                **{f"{m}_samples_per_s": round(o[m]["samples_per_s"], 3) for m in modes}}
        if {"topk_cached", "topk_uncached"} <= set(modes):
            part["topk_cached_vs_uncached"] = round(o["topk_cached"]["samples_per_s"]
                                                    / o["topk_uncached"]["samples_per_s"], 2)
            part["prefix_s"] = round(o["topk_cached"]["prefix_s"], 2)
        print(json.dumps(part))
        return
    summary = {
        "dataset": o["joint"]["dataset"], "n": n, "epochs": args.epochs, "top_k": args.top_k,
        "threads": o["joint"]["threads"],
        **{f"{m}_samples_per_s": round(o[m]["samples_per_s"], 3) for m in modes},
        **{f"{m}_peak_rss_mb": round(o[m]["peak_rss_mb"]) for m in modes},
        "prefix_s": round(o["topk_cached"]["prefix_s"], 2), "prefix_mb": round(o["topk_cached"]["prefix_mb"], 1),
        "frozen_encode_s": round(o["frozen"]["encode_s"], 2),
        "frozen_image_min_cosine": o["frozen_image"]["min_cosine"],
        "topk_cached_vs_uncached": round(o["topk_cached"]["samples_per_s"] / o["topk_uncached"]["samples_per_s"], 2),
        "topk_cached_ceiling": round(1 + o["topk_cached"]["prefix_s"] / (n + 8) * o["topk_cached"]["samples_per_s"], 2),
        "joint_vs_baseline": round(o["joint"]["samples_per_s"] / o["joint_baseline"]["samples_per_s"], 2),
        "frozen_image_vs_baseline": round(o["frozen_image"]["channels_last_img_per_s"]
                                          / o["frozen_image"]["contiguous_img_per_s"], 2),
        "joint_vs_reference": round(o["joint"]["samples_per_s"] / o["reference"]["samples_per_s"], 2),
        "dataloader_vs_inprocess": round(o["joint_dataloader"]["samples_per_s"] / o["joint"]["samples_per_s"], 2),
    }
    if args.compile:
        summary["compile_s"] = round(o["reference_compiled"]["compile_s"], 1)
        summary["compiled_vs_reference"] = round(o["reference_compiled"]["samples_per_s"]
                                                 / o["reference"]["samples_per_s"], 2)
    if "paper" in pairs:
        p = {m: results[("paper", m)] for m in modes if ("paper", m) in results}
        summary["paper_n"] = args.paper_n
        summary.update({f"paper_{m}_samples_per_s": round(p[m]["samples_per_s"], 3) for m in p})
        summary["paper_topk_cached_vs_uncached"] = round(p["topk_cached"]["samples_per_s"]
                                                         / p["topk_uncached"]["samples_per_s"], 2)
        summary["paper_joint_vs_baseline"] = round(p["joint"]["samples_per_s"]
                                                   / p["joint_baseline"]["samples_per_s"], 2)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
