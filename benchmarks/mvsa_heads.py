"""Every fusion head on MVSA-Single with the offline pre-trained pair minilm + efficientnet_lite0.

Superseded for frozen heads by `jftzoo bench` (5 seeds, group-aware splits, confidence intervals):
benchmarks/results/mvsa_single_frozen.md. Rows made before jftzoo 0.2.0 used a random split (near-
duplicates crossing it) and stored no validation figures; the table marks them so.

Merge labels, one seeded stratified 8:1:1 split (early stopping on its 'val' part, figures on its
'test' part). Rows are written one by one to a JSONL file and a run that is stopped and started
again skips the rows it already has, so the long top-k rows can be spread over several sittings.
The Markdown table is re-made from the JSONL file at the end of every row.

Frozen rows share one pass of each encoder over the dataset (jftzoo.features.FeatureStore): its
wall time is reported once, on its own line, and each frozen row's time is its head alone.

Usage:
  HF_HUB_OFFLINE=1 python benchmarks/mvsa_heads.py [--modes frozen,top-k] [--heads concat,...]
      [--data mvsa-single:../shared/data/mvsa_single] [--top-k 2] [--topk-max-epochs 3]
      [--groups near-duplicates|none] [--out benchmarks/results/mvsa_heads.jsonl] [--markdown-only]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path

import torch

HEADS = ["text-only", "image-only", "concat", "attention", "attention-paper", "gated", "late", "xattn"]
UNIMODAL = {"text-only", "image-only"}
ROOT = Path(__file__).resolve().parents[1]


def row_key(row: dict) -> tuple:
    return (row["fusion"], row["mode"])


def fmt_s(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds >= 90 else f"{seconds:.0f} s"


def write_markdown(rows: list[dict], encode_info: dict | None, command: str, path: Path) -> None:
    order = {(h, m): i for i, (m, h) in enumerate((m, h) for m in ("frozen", "top-k", "joint") for h in HEADS)}
    rows = sorted(rows, key=lambda r: order.get(row_key(r), 99))
    first = rows[0] if rows else {}
    old = [r for r in rows if "val_metrics" not in r]
    lines = [
        "# Every fusion head on MVSA-Single (minilm + efficientnet_lite0, pre-trained, offline)",
        "",
    ]
    if old:
        lines += [f"**Superseded ({len(old)} of {len(rows)} rows):** made before jftzoo 0.2.0 on ONE random split "
                  "(68 near-duplicate groups cross MVSA-Single's seed-0 random 8:1:1 split), one seed, no validation "
                  "figures stored, so no row of them is picked as best. For frozen heads see "
                  "[mvsa_single_frozen.md](mvsa_single_frozen.md) (5 seeds, group-aware splits, 95 % CIs, paired "
                  "comparisons); AUC below is macro one-vs-rest ROC AUC.", ""]
    lines += [
        f"Command: `{command}`",
        "",
        f"Data: {first.get('dataset', '?')} — {first.get('n_records', '?')} records after the merge label policy; "
        f"seeded (seed {first.get('seed', '?')}) stratified 8:1:1 split: {first.get('n_train', '?')} train / "
        f"{first.get('n_val', '?')} val (early stopping) / {first.get('n_test', '?')} test; split checksum "
        f"`{str(first.get('split_checksum', '?'))[:16]}…`.",
        f"Machine: {first.get('machine', '?')}; torch {first.get('torch', '?')}, fp32.",
        "",
    ]
    if encode_info:
        lines += [f"Frozen rows share one encoder pass over all records: {encode_info['text_s']:.0f} s text "
                  f"(minilm), {encode_info['vision_s']:.0f} s vision (efficientnet_lite0, with its 7x7 tokens "
                  "for xattn); each frozen row's wall time below is its head alone (training + test prediction).",
                  ""]
    lines += ["| head | mode | test AUC | accuracy | weighted-F1 | macro-F1 | best epoch / run | wall time |",
              "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        m = r["metrics"]
        mode = r["mode"] if r["mode"] != "top-k" else f"top-k (k={r['top_k']})"
        lines.append(f"| {r['fusion']} | {mode} | {m['auc']:.3f} | {m['accuracy']:.3f} | {m['f1_weighted']:.3f} | "
                     f"{m['f1_macro']:.3f} | {r['best_epoch']} / {r['epochs_run']} | {fmt_s(r['wall_s'])} |")
    lines.append("")
    for mode in ("frozen", "top-k", "joint"):
        got = [r for r in rows if r["mode"] == mode]
        uni = [r for r in got if r["fusion"] in UNIMODAL]
        multi = [r for r in got if r["fusion"] not in UNIMODAL]
        if not uni or not multi:
            continue
        if any("val_metrics" not in r for r in got):
            lines.append(f"- {mode}: rows without validation figures: no best head is picked (test data picks "
                         "nothing).")
            continue
        # "Best" is chosen on VALIDATION AUC; the test AUC of the chosen rows is only reported.
        best_u = max(uni, key=lambda r: r["val_metrics"]["auc"])
        best_m = max(multi, key=lambda r: r["val_metrics"]["auc"])
        beats = best_m["metrics"]["auc"] > best_u["metrics"]["auc"]
        lines.append(f"- {mode}: the multimodal head best on validation, `{best_m['fusion']}` (val AUC "
                     f"{best_m['val_metrics']['auc']:.3f}), has test AUC {best_m['metrics']['auc']:.3f}: it "
                     f"{'beats' if beats else 'does NOT beat'} the unimodal head best on validation, "
                     f"`{best_u['fusion']}` (test AUC {best_u['metrics']['auc']:.3f}); {len(multi)} multimodal "
                     "heads run, one split: see the bench tables for intervals.")
    others: dict[str, list[str]] = {}
    for r in rows:  # rows added by a narrower command (e.g. --modes joint --heads attention-paper)
        if r.get("command", command) != command:
            others.setdefault(r["command"], []).append(f"{r['fusion']} ({r['mode']})")
    for other, which in others.items():
        lines += ["", f"{', '.join(which)}: `{other}`"]
    topk = [r for r in rows if r["mode"] == "top-k"]
    if topk:
        cap = topk[0].get("train_config", {}).get("max_epochs", "?")
        lines += ["", f"`top-k` stands in for `joint`: the top {topk[0]['top_k']} layer groups of each encoder train "
                  f"with the head, for at most {cap} epochs. Full joint fine-tuning of this pair is too slow on "
                  "2 CPU cores for eight heads (`python benchmarks/mode_step_speed.py`: "
                  "[mode_step_speed.md](mode_step_speed.md))."]
    joint = [r for r in rows if r["mode"] == "joint"]
    if joint:
        cap = joint[0].get("train_config", {}).get("max_epochs", "?")
        lines += ["", f"`joint` (every encoder layer trains, at most {cap} epochs) was run only for: "
                  f"{', '.join(r['fusion'] for r in joint)}."]
    have = {row_key(r) for r in rows}
    missing = [f"{h} ({m})" for m in ("frozen", "top-k") if any(r["mode"] == m for r in rows)
               for h in HEADS if (h, m) not in have]
    if missing:
        lines += ["", f"Not run yet: {', '.join(missing)}. The command above continues where it stopped."]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=f"mvsa-single:{ROOT.parent / 'shared' / 'data' / 'mvsa_single'}")
    parser.add_argument("--heads", default=",".join(HEADS))
    parser.add_argument("--modes", default="frozen,top-k")
    parser.add_argument("--top-k", type=int, default=2, help="layer groups per encoder that train in top-k mode")
    parser.add_argument("--topk-max-epochs", type=int, default=3, help="epoch cap for top-k/joint rows (cost)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--groups", choices=["near-duplicates", "none"], default="near-duplicates",
                        help="near-duplicate posts on one side of the split (default), or the random split")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "mvsa_heads.jsonl")
    parser.add_argument("--markdown-only", action="store_true", help="re-make the .md from the JSONL only")
    args = parser.parse_args()
    argv = [a for a in sys.argv[1:] if a != "--markdown-only"]  # the Markdown quotes the training command
    command = "HF_HUB_OFFLINE=1 python benchmarks/mvsa_heads.py " + " ".join(shlex.quote(a) for a in argv)
    from jftzoo.bench.store import ResultStore

    info_path = args.out.with_suffix(".encode.json")
    encode_info = json.loads(info_path.read_text()) if info_path.exists() else None
    md = args.out.with_suffix(".md")
    if args.markdown_only:
        rows = ResultStore(args.out.parent, args.out.name).records()
        if not rows:
            sys.exit(f"error: no finished rows in {args.out}; run without --markdown-only first")
        write_markdown(rows, encode_info, command, md)
        return

    from jftzoo.datasets import load_dataset
    from jftzoo.datasets.splits import ratio_split
    from jftzoo.features import FeatureStore
    from jftzoo.registry import get_encoder
    from jftzoo.train.classifier import FusionClassifier
    from jftzoo.train.metrics import evaluate

    ds = load_dataset(args.data, label_policy="merge" if args.data.startswith("mvsa") else None)
    from jftzoo.datasets.groups import groups_for

    split = ratio_split(ds, "8:1:1", args.seed, groups_for(ds, args.groups))
    by_id = ds.by_id()
    train, val, test = ([by_id[i] for i in split.parts[p]] for p in ("train", "val", "test"))
    heads = [h for h in args.heads.split(",") if h]
    modes = [m for m in args.modes.split(",") if m]
    store = ResultStore(args.out.parent, args.out.name).open()  # fsync'd appends; a cut last line is dropped
    rows = store.records()
    done = {row_key(r) for r in rows}
    machine = f"{platform.machine()}, {os.cpu_count()} CPU cores, {torch.get_num_threads()} torch threads"
    features = FeatureStore()
    for mode in modes:
        if mode == "frozen" and any((h, mode) not in done for h in heads):
            # One pass of each encoder over every record; all frozen heads reuse it.
            t0 = time.perf_counter()
            features.features(get_encoder("minilm"), [r.text for r in ds.records], tokens=True)
            t1 = time.perf_counter()
            features.features(get_encoder("efficientnet_lite0"), [r.image for r in ds.records], tokens=True)
            encode_info = {"text_s": t1 - t0, "vision_s": time.perf_counter() - t1, "n": len(ds.records)}
            info_path.write_text(json.dumps(encode_info) + "\n", encoding="utf-8")
            print(f"encoder pass: text {encode_info['text_s']:.0f} s, vision {encode_info['vision_s']:.0f} s",
                  flush=True)
        for head in heads:
            if (head, mode) in done:
                continue
            extra = {} if mode == "frozen" else {"max_epochs": args.topk_max_epochs, "top_k": args.top_k}
            clf = FusionClassifier("minilm", "efficientnet_lite0", head, mode, seed=args.seed, **extra)
            shared = features if mode == "frozen" else None
            t0 = time.perf_counter()
            clf.fit(train, validation=val, features=shared)
            probs = clf.predict_proba(test, features=shared)
            val_probs = clf.predict_proba(val, features=shared)
            wall = time.perf_counter() - t0
            index = {c: j for j, c in enumerate(clf.classes_)}
            metrics = evaluate([index[r.label] for r in test], probs, list(clf.classes_))
            val_metrics = evaluate([index[r.label] for r in val], val_probs, list(clf.classes_))
            weights = {m: "pretrained" if enc.pretrained else "random"
                       for m, enc in (("text", clf.model_.text), ("vision", clf.model_.vision))}
            row = {"dataset": ds.name, "text": "minilm", "vision": "efficientnet_lite0", "fusion": head,
                   "mode": mode, "top_k": args.top_k if mode == "top-k" else None,
                   "weights": "random" if "random" in weights.values() else "pretrained",
                   "text_weights": weights["text"], "vision_weights": weights["vision"],
                   "seed": args.seed, "metrics": metrics, "val_metrics": val_metrics, "groups": split.groups,
                   "split_digest": split.digest(), "best_epoch": clf.best_epoch_,
                   "epochs_run": len(clf.history_), "wall_s": wall, "n_records": len(ds.records),
                   "n_train": len(train), "n_val": len(val), "n_test": len(test), "split_checksum": split.checksum,
                   "machine": machine, "torch": torch.__version__, "train_config": vars(clf.train_config),
                   "command": command}
            store.append(row)
            rows.append(row)
            done.add((head, mode))
            print(f"{head:16s} {mode:7s} AUC {metrics['auc']:.3f} acc {metrics['accuracy']:.3f} "
                  f"wF1 {metrics['f1_weighted']:.3f} {fmt_s(wall)}", flush=True)
            write_markdown(rows, encode_info, command, md)
    write_markdown(rows, encode_info, command, md)
    print(md.read_text(encoding="utf-8"))


if __name__ == "__main__":
    main()
