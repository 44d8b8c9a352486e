"""Every fault of issue 16, run against the real CLI, in one table.

For each case: trials run, records lost, records duplicated, records changed (a metric differing from an
undisturbed run), tracebacks shown to the user, and clear errors (a non-zero exit or a reported bad record whose
message names the file, row or plugin). Interruptions, concurrency and disk-full cases run `python -m jftzoo` in
subprocesses (a kill must kill a real process); plugin faults and hostile input run in-process through click's
runner, with plugins registered the way tests register them.

    python benchmarks/reliability_sweep.py            # the full sweep (about 20 minutes on 2 cores)
    python benchmarks/reliability_sweep.py --quick    # under 5 minutes; totals as JSON on the last line

Disk-full cases mount a small tmpfs (root, or a user namespace); where neither is allowed they are listed as
skipped, not passed.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FULL_GRID = ["bench", "--fusion", "majority,svm,concat,late", "--limit", "40", "--folds", "5", "--epochs", "2"]
QUICK_GRID = ["bench", "--fusion", "majority,concat", "--limit", "30", "--folds", "2", "--epochs", "2"]
GRID: list[str] = FULL_GRID  # set by --quick
TRACEBACK = "Traceback (most recent call last)"
SMALL = 40  # posts in the small manifest the model cases train and predict on


@dataclass
class Outcome:
    trials: int = 0
    lost: int = 0
    duplicated: int = 0
    changed: int = 0
    tracebacks: int = 0
    clear: int = 0  # trials whose failure was reported clearly (exit code and message checked)
    expected_clear: int = 0  # trials that should have produced a clear error or report
    notes: list[str] = field(default_factory=list)
    skipped: str | None = None


class Sweep:
    def __init__(self, work: Path, quick: bool, seed: int) -> None:
        self.work, self.quick, self.rng = work, quick, random.Random(seed)
        self.env = {**os.environ, "JFTZOO_CACHE_DIR": str(work / "cache"), "HF_HUB_OFFLINE": "1"}
        os.environ["JFTZOO_CACHE_DIR"] = self.env["JFTZOO_CACHE_DIR"]  # the in-process cases share it
        self.reference: dict[str, Any] = {}
        self.ref_seconds = 0.0
        self.n = 0

    # -- helpers --------------------------------------------------------------------------------------------
    def fresh(self, name: str) -> Path:
        self.n += 1
        path = self.work / f"{self.n:03d}-{name}"
        path.mkdir(parents=True)
        return path

    def jz(self, args: list[str], env: dict[str, str] | None = None, timeout: float = 600) -> tuple[int, str]:
        """Run `jftzoo ARGS` in a fresh process (what a kill, a signal or a second writer needs)."""
        proc = subprocess.run([sys.executable, "-m", "jftzoo", *args], capture_output=True, text=True,
                              env=env or self.env, timeout=timeout)
        return proc.returncode, proc.stdout + proc.stderr

    def cli(self, args: list[str], env: dict[str, str] | None = None) -> tuple[int, str]:
        """Run `jftzoo ARGS` in this process (no interpreter start-up): the cases that need no second process.
        An exception escaping the CLI counts as a traceback, as the user would see one."""
        from click.testing import CliRunner

        from jftzoo.cli import cli

        env = env or self.env
        res = CliRunner().invoke(cli, args, env={"JFTZOO_CACHE_DIR": env["JFTZOO_CACHE_DIR"],
                                                 "JFTZOO_CACHE_LAYOUT": env.get("JFTZOO_CACHE_LAYOUT")})
        output = res.output
        if res.exception is not None and not isinstance(res.exception, SystemExit):
            output += f"\n{TRACEBACK}\n{type(res.exception).__name__}: {res.exception}"
        return res.exit_code, output

    def start(self, args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        return subprocess.Popen([sys.executable, "-m", "jftzoo", *args], stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, env=env or self.env)

    def prepare(self) -> None:
        started = time.perf_counter()
        rc, out = self.jz([*GRID, "--out", str(self.work / "reference")])
        if rc != 0:
            raise SystemExit(f"the undisturbed reference run failed:\n{out[-3000:]}")
        self.ref_seconds = time.perf_counter() - started
        self.reference = records(self.work / "reference")

    def score(self, o: Outcome, out: Path, subset: set[str] | None = None) -> None:
        """Compare a results folder with the undisturbed reference (optionally only some of its keys)."""
        want = {k: v for k, v in self.reference.items() if subset is None or k in subset}
        lines = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()] \
            if (out / "results.jsonl").exists() else []
        got = {r["key"]: r["metrics"] for r in lines}
        o.lost += len(set(want) - set(got))
        o.duplicated += len(lines) - len(got)
        o.changed += sum(1 for k in set(want) & set(got) if got[k] != want[k])

    def saw(self, o: Outcome, output: str, ok: bool) -> None:
        """One trial that should fail clearly: `ok` is whether its exit code and message were the promised ones."""
        o.expected_clear += 1
        o.clear += int(ok and TRACEBACK not in output)
        o.tracebacks += int(TRACEBACK in output)
        if not ok:
            o.notes.append(output.strip().splitlines()[-1][:200] if output.strip() else "(no output)")

    def trials(self, full: int, quick: int) -> int:
        return quick if self.quick else full

    # -- interruptions ----------------------------------------------------------------------------------------
    def kill_and_resume(self, sig: int, trials: int) -> Outcome:
        o = Outcome()
        for _ in range(trials):
            out = self.fresh("signal")
            proc = self.start([*GRID, "--out", str(out)])
            time.sleep(self.rng.uniform(0.5, self.ref_seconds))  # a random point of the run
            o.trials += 1
            if proc.poll() is None:
                proc.send_signal(sig)
            output, _ = proc.communicate(timeout=300)
            o.tracebacks += int(TRACEBACK in output)
            if sig != signal.SIGKILL and proc.returncode not in (0,):
                self.saw(o, output, proc.returncode == 130 and "Run the same command again" in output)
            rc, again = self.cli([*GRID, "--out", str(out)])  # resume
            o.tracebacks += int(TRACEBACK in again)
            if rc != 0:
                o.notes.append(f"resume exit {rc}: {again[-200:]}")
                o.lost += len(self.reference)
            self.score(o, out)
        return o

    def repeated_kills(self, kills: int) -> Outcome:
        """kill -9 at `kills` points spread over grids: each run is killed a random moment after its next
        record or two are written, so every kill lands mid-grid; then each grid is finished and compared."""
        o, total = Outcome(), len(self.reference)
        out = self.fresh("kill9")
        grids = [out]
        for _ in range(kills):
            done = count_lines(out / "results.jsonl")
            if done >= total - 1:  # this grid is nearly done: the next kills go to a fresh one
                out = self.fresh("kill9")
                grids.append(out)
                done = 0
            target = min(total - 1, done + self.rng.randint(1, 2))
            proc = self.start([*GRID, "--out", str(out)])
            deadline = time.monotonic() + 300
            while proc.poll() is None and count_lines(out / "results.jsonl") < target and time.monotonic() < deadline:
                time.sleep(0.02)
            time.sleep(self.rng.uniform(0, 0.3))  # somewhere inside the next task (or its write)
            if proc.poll() is None:
                proc.kill()
            proc.communicate(timeout=60)
            o.trials += 1
        for grid in grids:
            rc, again = self.cli([*GRID, "--out", str(grid)])
            o.tracebacks += int(TRACEBACK in again)
            if rc != 0:
                o.notes.append(f"final run exit {rc}")
            self.score(o, grid)
        return o

    # -- concurrency --------------------------------------------------------------------------------------------
    def two_benches(self, wait: bool) -> Outcome:
        o = Outcome()
        for _ in range(self.trials(3, 1)):
            out = self.fresh("two-benches")
            extra = ["--wait"] if wait else []
            procs = [self.start([*GRID, "--out", str(out), *extra]) for _ in range(2)]
            outputs = [p.communicate(timeout=600)[0] for p in procs]
            codes = sorted(p.returncode for p in procs)
            o.trials += 1
            o.tracebacks += sum(TRACEBACK in x for x in outputs)
            if wait:
                if codes != [0, 0]:
                    o.notes.append(f"exit codes {codes}")
            else:  # one finished, the other was refused naming the holder (or both ran one after the other)
                refused = [x for p, x in zip(procs, outputs, strict=True) if p.returncode == 1]
                if refused:
                    self.saw(o, refused[0], "pid" in refused[0] and "--wait" in refused[0])
            self.score(o, out)
        return o

    def shared_cache(self) -> Outcome:
        o = Outcome()
        for _ in range(self.trials(2, 1)):
            base = self.fresh("shared-cache")
            env = {**self.env, "JFTZOO_CACHE_DIR": str(base / "cache")}  # empty: both write every entry
            outs = [base / "a", base / "b"]
            procs = [self.start([*GRID, "--out", str(x)], env) for x in outs]
            outputs = [p.communicate(timeout=600)[0] for p in procs]
            o.trials += 1
            o.tracebacks += sum(TRACEBACK in x for x in outputs)
            for x in outs:
                self.score(o, x)
            rc, verify = self.cli(["cache", "verify", "--keep", "--json"], env)
            if rc != 0:
                o.changed += 1
                o.notes.append(f"cache verify: {verify[-300:]}")
        return o

    # -- damaged state --------------------------------------------------------------------------------------------
    def finished_copy(self, name: str) -> Path:
        out = self.fresh(name)
        shutil.copytree(self.work / "reference", out, dirs_exist_ok=True)
        (out / ".jftzoo.lock").unlink(missing_ok=True)
        return out

    def torn_results(self, junk: bool) -> Outcome:
        o = Outcome()
        for _ in range(self.trials(4, 1)):
            out = self.finished_copy("torn")
            path = out / "results.jsonl"
            data = path.read_bytes()
            if junk:
                data += bytes(self.rng.randrange(256) for _ in range(40)).replace(b"\n", b"")
            else:
                last = data.rstrip(b"\n").rfind(b"\n") + 1
                data = data[: self.rng.randrange(last + 1, len(data) - 1)]
            path.write_bytes(data)
            rc, output = self.cli([*GRID, "--out", str(out)])
            o.trials += 1
            self.saw(o, output, rc == 0 and "cut an unfinished last line" in output)
            self.score(o, out)
        return o

    def cache_damage(self, how: str) -> Outcome:
        o = Outcome()
        for _ in range(self.trials(3, 1)):
            base = self.fresh(f"cache-{how}")
            cache = base / "cache"
            shutil.copytree(self.work / "cache", cache)
            env = {**self.env, "JFTZOO_CACHE_DIR": str(cache)}
            if how == "shard-bytes":  # a damaged page of an LMDB shard: some entry's float bytes overwritten
                shard = self.rng.choice(sorted((cache / "shards").glob("*/*/data.mdb")))
                raw = bytearray(shard.read_bytes())
                from jftzoo.cache_shards import MAGIC

                starts = [i for i in range(len(raw)) if raw[i : i + 4] == MAGIC]
                at = self.rng.choice(starts) + 80  # past the entry's header, inside its payload
                raw[at : at + 8] = bytes(255 - b for b in raw[at : at + 8])
                shard.write_bytes(bytes(raw))
                rc, output = self.cli(["cache", "verify", "--keep"], env)
                o.trials += 1
                self.saw(o, output, rc == 1 and "1 corrupt" in output)
                rc, output = self.cli([*GRID, "--out", str(base / "b")], env)
                o.tracebacks += int(TRACEBACK in output)
                self.score(o, base / "b")
                continue
            env["JFTZOO_CACHE_LAYOUT"] = "files"  # these damage one file of the per-file layout
            self.files_cache(cache)
            entries = sorted((cache / "embeddings").glob("*/*/*/*.safetensors"))
            victim = self.rng.choice(entries)
            data = victim.read_bytes()
            if how == "bit-flip":
                flipped = bytearray(data)
                flipped[self.rng.randrange(len(data) - 64, len(data))] ^= 1 << self.rng.randrange(8)
                victim.write_bytes(bytes(flipped))
            elif how == "truncated":
                victim.write_bytes(data[: self.rng.randrange(1, len(data))])
            else:  # an interrupted write's leftover
                (victim.parent / ".tmp-interrupted.safetensors").write_bytes(data[:100])
            rc, output = self.cli(["cache", "verify", "--keep"], env)
            o.trials += 1
            found = "1 temporary file" in output if how == "leftover" else "1 corrupt" in output
            self.saw(o, output, rc == (0 if how == "leftover" else 1) and found)  # debris is reported, not an error
            rc, output = self.cli([*GRID, "--out", str(base / "b")], env)  # the broken entry is recomputed
            o.tracebacks += int(TRACEBACK in output)
            self.score(o, base / "b")
        return o

    def files_cache(self, cache: Path) -> None:
        """Fill `cache` in the per-file layout too (the reference run used the default layout)."""
        if not list((cache / "embeddings").glob("*/*/*/*.safetensors")):
            self.cli([*GRID, "--out", str(cache.parent / "fill")], {**self.env, "JFTZOO_CACHE_DIR": str(cache),
                                                                    "JFTZOO_CACHE_LAYOUT": "files"})

    def tampered_split(self) -> Outcome:
        o, out = Outcome(), self.finished_copy("split")
        (manifest,) = (out / "splits").glob("*.json")
        doc = json.loads(manifest.read_text())
        parts = doc.get("parts", doc)
        moved = next(iter(parts.values()))
        if isinstance(moved, list) and moved:
            moved.pop()
        elif isinstance(moved, dict):
            for v in moved.values():
                if isinstance(v, list) and v:
                    v.pop()
                    break
        manifest.write_text(json.dumps(doc))
        rc, output = self.cli([*GRID, "--out", str(out)])
        o.trials += 1
        from jftzoo.datasets.splits import read_split

        self.saw(o, output, rc == 0 and manifest.name in output and "written again" in output)
        try:
            read_split(manifest)  # whole and true again
        except Exception as exc:
            o.changed += 1
            o.notes.append(f"manifest still altered: {exc}")
        self.score(o, out)
        return o

    # -- disk full --------------------------------------------------------------------------------------------
    def small_disk(self, size: str = "48k") -> Path | None:
        disk = self.fresh("disk")
        ok = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(disk)], capture_output=True)
        return disk if ok.returncode == 0 else None

    def grow(self, disk: Path, size: str) -> None:
        subprocess.run(["mount", "-o", f"remount,size={size}", str(disk)], check=True)

    def disk_full(self, what: str) -> Outcome:
        o = Outcome()
        disk = self.small_disk()
        if disk is None:
            o.skipped = "cannot mount a tmpfs here"
            return o
        try:
            env = dict(self.env)
            if what == "records":
                args, out = [*GRID, "--out", str(disk / "b")], disk / "b"
            elif what == "cache":
                env["JFTZOO_CACHE_DIR"] = str(disk / "cache")
                out = self.fresh("b")
                args = [*GRID, "--out", str(out)]
            elif what == "predictions":
                args = ["predict", str(self.model()), "--data", self.small_data(), "--output", str(disk / "p.csv")]
                out = None
            else:  # model
                args, out = ["train", "--data", self.small_data(), "--fusion", "concat", "--epochs", "1",
                             "--min-epochs", "1", "--out", str(disk / "m")], None
            if out is None:  # small files: fill the disk to the last byte first
                subprocess.run(["dd", "if=/dev/zero", f"of={disk / 'filler'}", "bs=4k"], capture_output=True)
            rc, output = self.cli(args, env)
            o.trials += 1
            leftovers = [p for p in disk.rglob("*") if p.name.startswith(".tmp-") or p.suffix == ".partial"]
            self.saw(o, output, rc == 1 and "no space left on the device holding" in output and not leftovers)
            (disk / "filler").unlink(missing_ok=True)
            self.grow(disk, "1g")
            rc, output = self.cli(args, env)
            o.tracebacks += int(TRACEBACK in output)
            if rc != 0:
                o.notes.append(f"after freeing space: exit {rc}")
            if out is not None:
                self.score(o, out)
            elif what == "predictions":
                rows = (disk / "p.csv").read_text().splitlines()[1:]
                o.lost += max(0, SMALL - len(rows))
                o.duplicated += len(rows) - len({r.split(",")[0] for r in rows})
        finally:
            subprocess.run(["umount", "-l", str(disk)], check=False)
        return o

    def small_data(self) -> str:
        """SMALL posts of the built-in demo in a JSON Lines manifest: a model trains on it in seconds."""
        root = self.work / "small"
        if not (root / "posts.jsonl").exists():
            from jftzoo.datasets import load_dataset
            from jftzoo.datasets.splits import subsample

            (root / "img").mkdir(parents=True)
            rows = []
            for r in subsample(load_dataset("emoji-sentiment"), SMALL, 0).records:
                shutil.copy(r.image, root / "img" / f"{r.id}{r.image.suffix}")
                rows.append({"id": r.id, "text": r.text, "image": f"img/{r.id}{r.image.suffix}", "label": r.label})
            (root / "posts.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
        return f"jsonl:{root / 'posts.jsonl'}"

    def model(self) -> Path:
        path = self.work / "model"
        if not (path / "config.json").exists():
            rc, out = self.cli(["train", "--data", self.small_data(), "--fusion", "concat", "--epochs", "1",
                                "--min-epochs", "1", "--out", str(path)])
            if rc != 0:
                raise SystemExit(f"training the sweep's model failed:\n{out[-2000:]}")
        return path

    # -- plugin faults (in-process) ------------------------------------------------------------------------------
    def plugin_case(self, kind: str) -> Outcome:
        from click.testing import CliRunner

        from jftzoo import plugins
        from jftzoo.cli import cli

        o = Outcome()
        name = f"sweep-{kind}"
        plugins.register_plugin(fault_plugin(kind), name)
        reset_registries()
        try:
            if kind in ("hook-raises", "malformed", "duplicate"):
                res = CliRunner().invoke(cli, ["list-encoders"])
                o.trials += 1
                self.saw(o, res.output, res.exit_code == 0 and name in res.output)
            else:
                out = self.fresh(f"plugin-{kind}")
                args = ["--vision", "efficientnet_lite0,sweep-vision"] if kind != "raises-training" else [
                    "--mode", "joint", "--text", "sweep-text", "--vision", "sweep-vision"]  # tiny: joint is cheap
                res = CliRunner().invoke(cli, [*GRID, *args, "--out", str(out)])
                o.trials += 1
                self.saw(o, res.output, res.exit_code == 1 and name in res.output)
                if kind != "raises-training":  # the cells without the plugin's encoder all ran
                    good = {r["key"] for r in map(json.loads, (out / "results.jsonl").read_text().splitlines())}
                    o.lost += len(set(self.reference) - good)
                    self.score(o, out)
        finally:
            plugins.unregister_plugin(name)
            reset_registries()
        return o

    # -- hostile input (in-process) ----------------------------------------------------------------------------
    def hostile_rows(self, kind: str) -> Outcome:
        """Five good rows and three hostile ones of one kind: each hostile row is a record (cleaned and counted)
        or a bad record with a reason; none is lost, none is a traceback."""
        from click.testing import CliRunner

        from jftzoo.cli import cli

        o = Outcome()
        root = self.fresh(f"hostile-{kind}")
        (root / "img").mkdir()
        from PIL import Image

        Image.new("RGB", (8, 8), (200, 10, 10)).save(root / "img" / "ok.png")
        rows = [{"id": f"g{i}", "text": f"good {i}", "image": "img/ok.png", "label": "positive"} for i in range(5)]
        rows[0]["label"] = "negative"  # two classes
        bad = [hostile_row(kind, root, i) for i in range(3)]
        rows += bad
        if kind == "unknown-label":  # a manifest's classes are what it holds; MVSA's label set is fixed
            (root / "data").mkdir()
            index = "".join(f"{r['id']}\t{r['label']},{r['label']}\n" for r in rows)
            (root / "labelResultAll.txt").write_text("ID\ttext,image\n" + index)
            for r in rows:
                (root / "data" / f"{r['id']}.txt").write_text(r["text"])
                shutil.copy(root / "img" / "ok.png", root / "data" / f"{r['id']}.jpg")
            data = f"mvsa-single:{root}"
        else:
            (root / "posts.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
            data = f"jsonl:{root / 'posts.jsonl'}"
        res = CliRunner().invoke(cli, ["data", "check", "--data", data, "--on-bad", "skip", "--json"])
        o.trials += len(bad)
        try:
            report = json.loads(res.stdout)
        except (ValueError, AttributeError):
            o.tracebacks += int(res.exception is not None and not isinstance(res.exception, SystemExit))
            o.notes.append(res.output[-200:])
            o.lost += len(bad)
            return o
        named = {p["record_id"]: p["reason"] for p in report.get("skipped", []) if p.get("record_id") is not None}
        cleaned = {"nul-text": "NUL bytes", "huge-text": "truncated"}.get(kind)
        counted = [n for n in report.get("notes", []) if cleaned and cleaned in n]
        for row in bad:  # cleaned texts stay records, counted in the notes; everything else is a named bad record
            o.expected_clear += 1
            if kind == "empty-id":  # an id is optional: the row is data, named by its line
                o.clear += int(report.get("records", 0) == len(rows))
            elif cleaned:
                o.clear += int(bool(counted) and int(counted[0].rsplit(":", 1)[1]) >= len(bad))
            else:
                o.clear += int(row["id"] in named)
        accounted = report.get("records", 0) + sum(
            int(r.split()[2]) if r.startswith("duplicate id:") else 1 for r in named.values())
        o.lost += max(0, len(rows) - accounted)
        return o

    def model_folder(self, how: str) -> Outcome:
        from click.testing import CliRunner

        from jftzoo.cli import cli

        o = Outcome()
        folder = self.fresh(f"model-{how}")
        shutil.copytree(self.model(), folder, dirs_exist_ok=True)
        if how == "pickle":
            (folder / "model.safetensors").unlink()
            (folder / "model.bin").write_bytes(pickle.dumps({"weights": [1, 2, 3]}))
            (folder / "pytorch_model.bin").write_bytes(pickle.dumps({"x": 1}))
        elif how == "tampered-config":
            config = json.loads((folder / "config.json").read_text())
            config["format"] = "something-else/9"
            (folder / "config.json").write_text(json.dumps(config))
        else:  # weights of the wrong shape
            from safetensors.torch import load_file, save_file

            state = load_file(str(folder / "model.safetensors"))
            name = next(k for k, v in state.items() if k.startswith("head") and v.dim() == 2)
            state[name] = state[name][:, :-1].contiguous()
            save_file(state, str(folder / "model.safetensors"))
        res = CliRunner().invoke(cli, ["predict", str(folder), "--text", "a fine day"])
        o.trials += 1
        self.saw(o, res.output, res.exit_code == 1 and "Error" in res.output and str(folder) in res.output)
        return o

    # -- fuzzing ------------------------------------------------------------------------------------------------
    def fuzz(self, layout: str) -> Outcome:
        """Random manifests and bytes for one reader, for a fixed number of examples (Hypothesis): every line is
        a record, a reported bad record or a jftzoo error; never a traceback."""
        from hypothesis import HealthCheck, given, settings
        from hypothesis import strategies as st

        from jftzoo.datasets import load_dataset
        from jftzoo.errors import JftzooError

        o = Outcome()
        root = self.fresh(f"fuzz-{layout}")
        from PIL import Image

        (root / "img").mkdir()
        Image.new("RGB", (4, 4)).save(root / "img" / "ok.png")
        cells = st.one_of(st.text(max_size=20), st.sampled_from(["img/ok.png", "../x", "/etc/passwd", "", "0", "1",
                                                                 "positive", "http://a/b.png", "x\x00"]))
        examples = self.trials(500, 60)

        @settings(max_examples=examples, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(rows=st.lists(st.dictionaries(st.sampled_from(["id", "text", "image", "img", "label"]), cells),
                             max_size=5),
               junk=st.binary(max_size=30))
        def one(rows: list[dict[str, str]], junk: bytes) -> None:
            o.trials += 1
            data, lines = write_layout(layout, root, rows, junk)
            try:
                ds = load_dataset(data, on_bad="skip")
            except JftzooError:
                o.clear += 1
                o.expected_clear += 1
                return
            except Exception as exc:  # what a user would see as a traceback
                o.tracebacks += 1
                o.notes.append(f"{type(exc).__name__}: {exc}"[:200])
                return
            reported = sum(int(p.reason.split()[2]) if p.reason.startswith("duplicate id:") else 1
                           for p in ds.skipped)  # a duplicate id's report stands for every copy
            accounted = len(ds.records) + reported + sum(getattr(ds, "dropped", {}).values())
            o.lost += max(0, lines - accounted)

        one()
        return o


# -- fault plugins and hostile rows ------------------------------------------------------------------------------
def reset_registries() -> None:
    from jftzoo import registry
    from jftzoo.datasets import registry as dataset_registry
    from jftzoo.fusion import registry as fusion_registry

    registry.reset()
    dataset_registry.reset()
    fusion_registry.reset()


def fault_plugin(kind: str) -> object:
    import torch
    from torch import nn

    from jftzoo import hookimpl
    from jftzoo.encoders.base import Encoder, EncoderOutput
    from jftzoo.registry import EncoderSpec

    class Tiny(Encoder):
        embed_dim, token_dim = 8, 8

        def __init__(self, name: str, modality: str, fails: str) -> None:
            super().__init__(name)
            self.modality, self.fails = modality, fails
            self.proj = nn.Linear(8, 8)

        def preprocess(self, items: Any) -> dict[str, torch.Tensor]:
            return {"x": torch.ones(len(items), 8)}

        def forward(self, batch: dict[str, torch.Tensor]) -> EncoderOutput:  # type: ignore[override]
            if self.fails == "always" or (self.fails == "training" and torch.is_grad_enabled()):
                raise RuntimeError("the plugin's forward broke")
            pooled = self.proj(batch["x"])  # (B, 8)
            return EncoderOutput(pooled, pooled[:, None], torch.ones(pooled.shape[0], 1, dtype=torch.bool))

        def layer_groups(self) -> list[list[nn.Module]]:
            return [[self.proj]]

    def factory(fails: str, modality: str) -> Callable[..., Encoder]:
        def build(spec: Any, pretrained: bool = True, weights: Any = None) -> Encoder:
            if fails == "build":
                raise RuntimeError("the plugin's factory broke")
            return Tiny(spec.name, modality, fails)
        return build

    fails = {"raises-build": "build", "raises-frozen": "always", "raises-training": "training"}.get(kind, "never")

    class Plugin:
        @hookimpl
        def register_encoders(self, register: Callable[[Any], None]) -> None:
            if kind == "hook-raises":
                raise RuntimeError("the plugin's hook broke")
            if kind == "malformed":
                register(EncoderSpec(name="bad name!", modality="smell", dim=-1, source="x", factory="nowhere"))
                return
            if kind == "duplicate":
                register(EncoderSpec(name="minilm", modality="text", dim=8, source="x", factory=factory("never",
                                                                                                     "text")))
                return
            register(EncoderSpec(name="sweep-vision", modality="vision", dim=8, source="fake/sweep",
                                 factory=factory(fails, "vision")))
            register(EncoderSpec(name="sweep-text", modality="text", dim=8, source="fake/sweep",
                                 factory=factory("never", "text")))

    return Plugin()


def hostile_row(kind: str, root: Path, i: int) -> dict[str, str]:
    row = {"id": f"{kind}{i}", "text": "fine", "image": "img/ok.png", "label": "negative"}
    if kind == "absolute-path":
        row["image"] = str((root / "img" / "ok.png").resolve())
    elif kind == "dot-dot":
        row["image"] = "../" * (i + 1) + "etc/passwd"
    elif kind == "symlink-out":
        outside = root.parent / f"outside-{i}.png"
        shutil.copy(root / "img" / "ok.png", outside)
        (root / "img" / f"link{i}.png").symlink_to(outside)
        row["image"] = f"img/link{i}.png"
    elif kind == "url":
        row["image"] = f"https://example.com/{i}.png"
    elif kind == "nul-path":
        row["image"] = f"img/ok.png\x00{i}"
    elif kind == "bomb":
        from PIL import Image

        big = root / "img" / f"bomb{i}.png"
        Image.new("1", (20_000, 20_000)).save(big)  # ~400 M pixels, a few KB on disk
        row["image"] = f"img/bomb{i}.png"
    elif kind == "not-an-image":
        (root / "img" / f"fake{i}.png").write_bytes(b"MZ\x90\x00 this is not an image" * 10)
        row["image"] = f"img/fake{i}.png"
    elif kind == "nul-text":
        row["text"] = "nul\x00inside\x00" * (i + 1)
    elif kind == "huge-text":
        row["text"] = "w" * 3_000_000
    elif kind == "unknown-label":
        row["label"] = ["delighted", "5", "Positive"][i]
    elif kind == "duplicate-id":
        row["id"] = "g0"
    elif kind == "empty-id":
        row["id"] = ""
    return row


def write_layout(layout: str, root: Path, rows: list[dict[str, str]], junk: bytes) -> tuple[str, int]:
    """Write fuzzed rows in one reader's layout; returns (the --data argument, lines a reader must account for)."""
    for old in root.glob("*.jsonl"):
        old.unlink()
    clean = junk.replace(b"\n", b" ").replace(b"\r", b" ")
    if layout == "jsonl":
        body = [json.dumps(r).encode() for r in rows] + ([clean] if clean.strip() else [])
        (root / "posts.jsonl").write_bytes(b"\n".join(body) + b"\n")
        return f"jsonl:{root / 'posts.jsonl'}", len(body)
    if layout == "csv":
        cols = ["id", "text", "image", "label"]
        body = [",".join(json.dumps(r.get(c, "")) for c in cols).encode("utf-8", "surrogatepass") for r in rows]
        (root / "posts.csv").write_bytes(b"id,text,image,label\n" + b"\n".join([*body, clean]) + b"\n")
        return f"csv:{root / 'posts.csv'}", 0  # quoting may merge lines: only "no traceback" is checked
    if layout == "mvsa-single":
        (root / "data").mkdir(exist_ok=True)
        lines = []
        for r in rows:
            rid = r.get("id", "")
            lines.append(f"{rid}\t{r.get('label', '')},{r.get('text', '')}")
            if rid and "/" not in rid and "\x00" not in rid and rid not in (".", ".."):
                (root / "data" / f"{rid}.txt").write_text(r.get("text", ""), errors="surrogateescape")
        body = ("ID\ttext,image\n" + "\n".join(lines) + "\n").encode("utf-8", "surrogatepass") + clean
        (root / "labelResultAll.txt").write_bytes(body)
        n = sum(1 for x in body.decode("utf-8", "replace").splitlines()[1:] if x.strip())
        return f"mvsa-single:{root}", n
    # hateful-memes: a train split file (labels 0/1 under "label", image under "img")
    body = [json.dumps(r).encode() for r in rows] + ([clean] if clean.strip() else [])
    (root / "train.jsonl").write_bytes(b"\n".join(body) + b"\n")
    return f"hateful-memes:{root}", 0  # an unlabelled file is left out as a whole (noted): only tracebacks count


def count_lines(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def records(out: Path) -> dict[str, Any]:
    return {r["key"]: r["metrics"] for r in map(json.loads, (out / "results.jsonl").read_text().splitlines())}


# -- the sweep ------------------------------------------------------------------------------------------------
def cases(s: Sweep) -> list[tuple[str, str, Callable[[], Outcome]]]:
    q = s.quick
    out: list[tuple[str, str, Callable[[], Outcome]]] = [
        ("interrupt", "kill -9 at random points of one grid, resumed after each",
         lambda: s.repeated_kills(4 if q else 24)),
        ("interrupt", "kill -9 once, then resume (fresh folder per trial)",
         lambda: s.kill_and_resume(signal.SIGKILL, s.trials(4, 1))),
        ("interrupt", "SIGTERM at a random point, then resume",
         lambda: s.kill_and_resume(signal.SIGTERM, s.trials(4, 1))),
        ("interrupt", "SIGINT (Ctrl-C) at a random point, then resume",
         lambda: s.kill_and_resume(signal.SIGINT, s.trials(4, 1))),
        ("concurrency", "two benches on one --out (no --wait): one refused naming the holder",
         lambda: s.two_benches(wait=False)),
        ("concurrency", "two benches on one --out with --wait", lambda: s.two_benches(wait=True)),
        ("concurrency", "two benches sharing an empty cache", s.shared_cache),
        ("damaged state", "torn last line of results.jsonl", lambda: s.torn_results(junk=False)),
        ("damaged state", "garbage appended to results.jsonl", lambda: s.torn_results(junk=True)),
        ("damaged state", "cache entry with a flipped bit", lambda: s.cache_damage("bit-flip")),
        ("damaged state", "truncated cache entry", lambda: s.cache_damage("truncated")),
        ("damaged state", "leftover temporary file in the cache", lambda: s.cache_damage("leftover")),
        ("damaged state", "damaged entry inside a cache shard (LMDB)", lambda: s.cache_damage("shard-bytes")),
        ("damaged state", "edited split manifest", s.tampered_split),
        ("disk full", "results folder on a full tmpfs", lambda: s.disk_full("records")),
        ("disk full", "embedding cache on a full tmpfs", lambda: s.disk_full("cache")),
        ("disk full", "predict --output on a full tmpfs", lambda: s.disk_full("predictions")),
        ("disk full", "model save on a full tmpfs", lambda: s.disk_full("model")),
    ]
    for kind, what in [("hook-raises", "plugin hook raises at registration"),
                       ("malformed", "plugin registers a malformed spec"),
                       ("duplicate", "plugin registers a name already taken"),
                       ("raises-build", "plugin encoder factory raises at build"),
                       ("raises-frozen", "plugin encoder raises in the frozen pass"),
                       ("raises-training", "plugin encoder raises mid-training (joint)")]:
        out.append(("plugin", what, lambda k=kind: s.plugin_case(k)))
    for kind in ("absolute-path", "dot-dot", "symlink-out", "url", "nul-path", "bomb", "not-an-image", "nul-text",
                 "huge-text", "unknown-label", "duplicate-id", "empty-id"):
        out.append(("hostile input", f"manifest rows: {kind}", lambda k=kind: s.hostile_rows(k)))
    for how in ("pickle", "tampered-config", "wrong-shape"):
        out.append(("hostile input", f"predict MODEL_DIR: {how}", lambda h=how: s.model_folder(h)))
    for layout in ("jsonl", "csv", "mvsa-single", "hateful-memes"):
        out.append(("fuzz", f"Hypothesis: {layout} reader", lambda lay=layout: s.fuzz(lay)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer trials per case: under 5 minutes")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args()
    global GRID
    GRID = QUICK_GRID if args.quick else FULL_GRID
    work = Path(tempfile.mkdtemp(prefix="jftzoo-sweep-"))
    sweep = Sweep(work, args.quick, args.seed)
    started = time.perf_counter()
    sweep.prepare()
    print(f"# reliability sweep ({'quick' if args.quick else 'full'}, seed {args.seed}); undisturbed grid: "
          f"{len(sweep.reference)} records in {sweep.ref_seconds:.1f} s\n")
    print("| group | case | trials | lost | duplicated | changed | tracebacks | clear errors | s |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    totals = {"cases": 0, "trials": 0, "lost": 0, "duplicated": 0, "changed": 0, "tracebacks": 0,
              "clear_errors": 0, "expected_clear_errors": 0, "skipped": 0}
    notes: list[str] = []
    for group, name, run in cases(sweep):
        t0 = time.perf_counter()
        try:
            o = run()
        except Exception as exc:  # the sweep's own failure is a finding, not a crash
            o = Outcome(trials=1, tracebacks=1, notes=[f"sweep error: {type(exc).__name__}: {exc}"])
        took = time.perf_counter() - t0
        if o.skipped:
            print(f"| {group} | {name} | skipped: {o.skipped} | | | | | | |", flush=True)
            totals["skipped"] += 1
            continue
        clear = f"{o.clear}/{o.expected_clear}" if o.expected_clear else "-"
        print(f"| {group} | {name} | {o.trials} | {o.lost} | {o.duplicated} | {o.changed} | {o.tracebacks} | "
              f"{clear} | {took:.0f} |", flush=True)
        totals["cases"] += 1
        for key in ("trials", "lost", "duplicated", "changed", "tracebacks"):
            totals[key] += getattr(o, key)
        totals["clear_errors"] += o.clear
        totals["expected_clear_errors"] += o.expected_clear
        notes += [f"{name}: {n}" for n in o.notes]
    totals["seconds"] = round(time.perf_counter() - started, 1)
    print()
    for note in notes:
        print(f"- note: {note}")
    if not args.keep:
        for disk in work.glob("*-disk"):
            subprocess.run(["umount", "-l", str(disk)], capture_output=True, check=False)
        shutil.rmtree(work, ignore_errors=True)
    else:
        print(f"work folder kept: {work}")
    print(json.dumps(totals))


if __name__ == "__main__":
    main()
