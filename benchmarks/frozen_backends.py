"""Frozen-pass backends: ONNX Runtime and OpenVINO against PyTorch, MiniLM-L6 and EfficientNet-Lite0.

Each encoder's pooled-embedding forward is exported with the libraries' own paths (torch.onnx.export
for ONNX Runtime, openvino.convert_model straight from the PyTorch module; no hand-written
exporter), fed the SAME preprocessed batches as PyTorch (length-sorted text batches, channels_last
images as jftzoo runs them), and timed forward-only on real MVSA-Single records, each backend best
of `--repeats` interleaved rounds, all with the same thread count. A backend is worth offering
only at >= 1.3x PyTorch with embeddings at cosine >= 0.999 (issue 12).

Usage: python benchmarks/frozen_backends.py [--n 256] [--repeats 3] [--batch-size 32]
Needs `pip install onnxruntime openvino onnx` (not jftzoo dependencies). The last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))


class Pooled:
    """An encoder's pooled-embedding forward over positional tensors, the shape exporters take."""

    @staticmethod
    def wrap(enc: Any, inputs: list[str]) -> Any:
        import torch

        class _Pooled(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.enc = enc

            def forward(self, *xs: torch.Tensor) -> torch.Tensor:
                return self.enc(dict(zip(inputs, xs, strict=True))).pooled  # (B, D)

        return _Pooled().eval()


def measure(name: str, items: list[Any], batch_size: int, repeats: int, threads: int, tmp: Path) -> dict[str, Any]:
    import numpy as np
    import onnxruntime as ort
    import openvino as ov
    import torch

    import jftzoo

    enc = jftzoo.get_encoder(name).eval()
    order = sorted(range(len(items)), key=lambda i: -enc.sort_key(items[i]))  # as Encoder.embed batches
    batches = [enc.preprocess([items[i] for i in order[s : s + batch_size]]) for s in range(0, len(order), batch_size)]
    inputs = list(batches[0])  # e.g. input_ids, attention_mask (+ token_type_ids) | pixel_values
    model = Pooled.wrap(enc, inputs)
    example = tuple(batches[0][k] for k in inputs)
    onnx_path = tmp / f"{name}.onnx"
    dynamic = {k: ({0: "batch", 1: "seq"} if k != "pixel_values" else {0: "batch"}) for k in inputs}
    with torch.no_grad():
        torch.onnx.export(model, example, str(onnx_path), input_names=inputs, output_names=["pooled"],
                          dynamic_axes=dynamic, opset_version=17, dynamo=False)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    compiled = ov.Core().compile_model(ov.convert_model(model, example_input=example), "CPU",
                                       {"INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": "f32"})

    def run_torch() -> np.ndarray:
        with torch.inference_mode():
            return torch.cat([model(*(b[k] for k in inputs)) for b in batches]).numpy()

    def run_ort() -> np.ndarray:
        return np.concatenate([session.run(None, {k: b[k].numpy() for k in inputs})[0] for b in batches])

    def run_ov() -> np.ndarray:
        return np.concatenate([compiled([b[k].numpy() for k in inputs])[0] for b in batches])

    runs = {"pytorch": run_torch, "onnxruntime": run_ort, "openvino": run_ov}
    best: dict[str, float] = {}
    out: dict[str, np.ndarray] = {}
    for _ in range(repeats):  # interleaved, so drift in machine load hits every backend alike
        for backend, fn in runs.items():
            t0 = time.perf_counter()
            out[backend] = fn()
            best[backend] = max(best.get(backend, 0.0), len(items) / (time.perf_counter() - t0))
    ref = torch.from_numpy(out["pytorch"])
    summary: dict[str, Any] = {}
    for backend in runs:
        cos = torch.nn.functional.cosine_similarity(ref, torch.from_numpy(out[backend]), dim=-1)
        summary[f"{name}_{backend}_per_s"] = round(best[backend], 2)
        if backend != "pytorch":
            summary[f"{name}_{backend}_vs_pytorch"] = round(best[backend] / best["pytorch"], 2)
            summary[f"{name}_{backend}_min_cosine"] = float(cos.min())
        print(f"{name:20s} {backend:12s} {best[backend]:9.1f} items/s  min cosine {float(cos.min()):.6f}", flush=True)
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()

    import onnxruntime as ort
    import openvino as ov
    import torch
    from finetune_speed import records

    threads = torch.get_num_threads()
    train, _, _, dataset = records(args.n)
    summary: dict[str, Any] = {"dataset": dataset, "n": len(train), "threads": threads, "batch_size": args.batch_size,
                               "torch": torch.__version__, "onnxruntime": ort.__version__, "openvino": ov.__version__}
    tmp = Path(tempfile.mkdtemp(prefix="jftzoo-backends-"))
    summary.update(measure("minilm", [r.text for r in train], args.batch_size, args.repeats, threads, tmp))
    summary.update(measure("efficientnet_lite0", [r.image for r in train], args.batch_size, args.repeats, threads,
                           tmp))
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
