"""The --device check: a missing GPU is a usage error before any model is built, not a driver traceback."""

from __future__ import annotations

from jftzoo.errors import UsageError, suggest

KINDS = ("cpu", "cuda", "mps")


def device_kind(device: str | None) -> str:
    """cpu, cuda or mps of a --device name such as cuda:1 (None: cpu, what records without a device ran on)."""
    kind = str(device or "cpu").split(":")[0]
    return kind if kind in KINDS else "cpu"


def check_device(name: str) -> str:
    """`name` when torch can run on it here; else a UsageError that says what this machine has."""
    import torch

    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError):
        hint = suggest(name.split(":")[0], KINDS)
        did = f" Did you mean {hint[0]!r}?" if hint else ""
        raise UsageError(f"--device {name!r} is not a torch device.{did} Use cpu, cuda, cuda:N or mps.") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise UsageError(f"--device {name}: no CUDA device is available here (torch {torch.__version__}, "
                             f"built for CUDA {torch.version.cuda or 'none'}); use --device cpu")
        count = torch.cuda.device_count()
        if dev.index is not None and dev.index >= count:
            raise UsageError(f"--device {name}: this machine has {count} CUDA device(s), cuda:0 to cuda:{count - 1}")
    elif dev.type == "mps":
        if not torch.backends.mps.is_available():
            raise UsageError(f"--device {name}: no Apple GPU (MPS) is available here; use --device cpu")
    elif dev.type not in KINDS:
        raise UsageError(f"--device {name}: jftzoo runs on {', '.join(KINDS)}")
    return name
