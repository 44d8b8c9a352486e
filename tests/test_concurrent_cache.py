"""Two processes sharing one `$JFTZOO_CACHE_DIR`: writing the same entries at the same time, while a third reads
them, every read sees a whole entry or none, both writers finish, and the cache verifies clean afterwards."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

WORKER = textwrap.dedent("""
    import sys, time, torch
    from pathlib import Path
    from jftzoo.cache import DiskCache
    from jftzoo.features import Entry

    root, role, n = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    cache = DiskCache(root)

    def entry(i):  # the same bytes in every process, as two runs of one encoder produce
        g = torch.Generator().manual_seed(i)
        return Entry(torch.randn(384, generator=g), torch.randn(256, 384, generator=g))

    stop = root / "stop"
    order = range(n) if role == "forward" else reversed(range(n)) if role == "backward" else None
    if order is not None:
        rounds, deadline = 0, time.monotonic() + 240
        while (not stop.exists() or rounds < 2) and time.monotonic() < deadline:
            # overwrite entries until the reader is done: replacing stays atomic
            for i in order:
                cache.put("enc/fp", f"{i:04d}", entry(i))
            rounds += 1
        print("written", flush=True)
    else:
        seen, wanted = 0, [entry(i) for i in range(n)]
        first = root / "embeddings" / "enc" / "fp" / "00" / "0000.safetensors"
        started = time.monotonic()
        while not first.exists() and time.monotonic() - started < 120:  # begin once the writers have
            time.sleep(0.01)
        try:
            for sweep in range(10):
                for i in range(n):
                    got = cache.get("enc/fp", f"{i:04d}", tokens=True)
                    if got is not None:
                        want = wanted[i]
                        assert torch.equal(got.pooled, want.pooled) and torch.equal(got.tokens, want.tokens), i
                        seen += 1
        finally:
            stop.touch()  # the writers stop whatever happened here
        print("read", seen, "corrupt", sum(cache.corrupt.values()), flush=True)
""")


def test_two_writers_and_a_reader_on_one_cache(tmp_path: Path) -> None:
    from jftzoo.cache import DiskCache

    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    n = 80
    (tmp_path / "cache").mkdir()
    procs = [subprocess.Popen([sys.executable, str(script), str(tmp_path / "cache"), role, str(n)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for role in ("forward", "backward", "reader")]
    try:
        reader_out = procs[2].communicate(timeout=300)
        (tmp_path / "cache" / "stop").touch()  # the writers stop even if the reader died (a torn read can SIGBUS)
        outs = [p.communicate(timeout=300) for p in procs[:2]] + [reader_out]
    finally:
        for p in procs:
            p.kill()
    for p, (_out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err[-3000:]
    assert outs[0][0].strip() == outs[1][0].strip() == "written"
    reader = outs[2][0].split()
    assert int(reader[1]) > 0, "the reader never overlapped the writers"
    assert reader[3] == "0"  # no read ever found a torn or half-written entry
    assert DiskCache(tmp_path / "cache").verify(remove=False) == (n, [], [])  # every entry whole, no leftovers
    files = sorted((tmp_path / "cache" / "embeddings" / "enc" / "fp").glob("*/*.safetensors"))
    assert len(files) == n
