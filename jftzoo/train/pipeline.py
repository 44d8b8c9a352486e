"""The input pipeline: which records form each batch, and where their preprocessing runs.

Batches are planned up front from the seeded generator (shuffled, optionally length-bucketed), so
the same seed gives the same batches whether preprocessing runs in this process (`workers=0`) or in
DataLoader worker processes, and so the same losses. Workers tokenise, decode and transform the
next batches while the model computes; each worker runs single-threaded so that workers and torch's
intra-op threads together do not oversubscribe the cores.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch

from jftzoo.datasets.records import Record

BUCKET_BATCHES = 50  # a bucket holds this many batches of records, sorted by text length inside


def default_workers(device: torch.device | str = "cpu") -> int:
    """Worker processes that can run beside the step without slowing it.

    On a GPU the step leaves the CPU idle: half the cores, at most 8, keep the device fed. On a CPU
    the step's intra-op threads already use every core (torch's default), so a worker only takes a
    core from the matmuls for preprocessing worth ~1-2 % of a step: measured slower on the 2-core
    machine (benchmarks/finetune_speed.py, joint vs joint_inprocess); workers go only to cores torch
    leaves free (`torch.set_num_threads` below the core count).
    """
    cores = os.cpu_count() or 1
    if torch.device(device).type == "cuda":
        return max(1, min(8, cores // 2))
    return max(0, min(8, cores - torch.get_num_threads()))


def plan_batches(n: int, size: int, generator: torch.Generator | None,
                 lengths: Sequence[int] | None = None) -> list[list[int]]:
    """Index batches covering every item once: shuffled by `generator` (in order without one).

    With `lengths`, length bucketing: the shuffled order is cut into buckets of BUCKET_BATCHES
    batches, each bucket sorted by length and cut into batches, and the batches shuffled, so a batch
    pads to similar lengths while every epoch still sees every record once in a random batch order.
    """
    order = torch.randperm(n, generator=generator).tolist() if generator is not None else list(range(n))
    if lengths is None:
        return [order[s : s + size] for s in range(0, n, size)]
    chunk = size * BUCKET_BATCHES
    batches: list[list[int]] = []
    for start in range(0, n, chunk):
        bucket = sorted(order[start : start + chunk], key=lambda i: lengths[i])
        batches += [bucket[s : s + size] for s in range(0, len(bucket), size)]
    shuffle = torch.randperm(len(batches), generator=generator).tolist() if generator is not None else range(
        len(batches))
    return [batches[i] for i in shuffle]


class Collate:
    """Turns a list of record indices into (indices, preprocessed batch, labels); runs in workers."""

    def __init__(self, preprocess: Callable[[list[str], list[Any]], dict[str, dict[str, torch.Tensor]]],
                 records: Sequence[Record], index: dict[str, int] | None) -> None:
        self.preprocess = preprocess
        self.records = records
        self.index = index

    def __call__(self, idx: list[int]) -> tuple[list[int], dict[str, dict[str, torch.Tensor]], torch.Tensor | None]:
        chunk = [self.records[i] for i in idx]
        batch = self.preprocess([r.item("text") for r in chunk], [r.item("vision") for r in chunk])
        y = torch.tensor([self.index[r.label] for r in chunk]) if self.index is not None else None
        return idx, batch, y


def _worker_init(_: int) -> None:
    torch.set_num_threads(1)  # the main process's intra-op threads own the cores
    # `timeout`, a terminal's Ctrl-C and schedulers signal every process of the job: a worker that died of it made
    # torch raise "DataLoader worker ... killed by signal" in the main process, racing its clean stop (exit 130).
    # The main process alone stops and shuts its workers down; torch's watchdog ends them if it dies.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def preprocessed(preprocess: Callable[[list[str], list[Any]], dict[str, dict[str, torch.Tensor]]],
                 records: Sequence[Record], plan: Sequence[list[int]], index: dict[str, int] | None = None,
                 workers: int = 0, pin_memory: bool = False) -> Iterator[tuple[list[int], Any, Any]]:
    """(indices, batch, labels) for each planned batch, in plan order."""
    collate = Collate(preprocess, records, index)
    if workers <= 0 or len(plan) <= 1:
        for idx in plan:
            yield collate(list(idx))
        return
    from torch.utils.data import DataLoader

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # forked workers tokenise; no nested thread pools
    context = "fork" if "fork" in torch.multiprocessing.get_all_start_methods() else None
    loader = DataLoader(range(len(records)), batch_sampler=[list(b) for b in plan], collate_fn=collate,
                        num_workers=workers, pin_memory=pin_memory, prefetch_factor=2,
                        worker_init_fn=_worker_init, multiprocessing_context=context,
                        # its own generator: the loader's worker seeds must not consume the global RNG that
                        # dropout draws from, or workers would change the training run
                        generator=torch.Generator().manual_seed(0))
    yield from loader
