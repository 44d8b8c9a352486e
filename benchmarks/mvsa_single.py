"""MVSA-Single, the answer table (issue 13): baselines, frozen heads, tuned and fine-tuned rows, both
split protocols, 5 seeds, with paired comparisons against frozen concat on the same splits.

The runs go through `jftzoo bench` / `jftzoo tune` into one results store (resumable; the commands are
in benchmarks/results/mvsa_single.md); this script makes the committed table from it:

  python benchmarks/mvsa_single.py [--results benchmarks/results/mvsa_single] [--resamples 1000]

Writes benchmarks/results/mvsa_single.md, mvsa_single.json (exactly `jftzoo results export --format json --ensemble
--select-ensemble 3`; the md's frozen-only pick is left out of it)
and mvsa_single.compare.json. Rows with fewer than 5 seeds, and the fine-tuned rows issue 13 asks for
that have none yet (expected_rows), make the table PARTIAL, and say so.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

from jftzoo.bench.report import device_label, seed_ensemble_mark  # where a record ran; "(ensemble of N seeds)"
from jftzoo.train.config import field_defaults  # what a record's absent train-config field was
from jftzoo.train.presets import fields_beyond, has_recipe, options_text  # a record's recipe and options on top

ROOT = Path(__file__).resolve().parents[1]
SEEDS = 5
MAX_MEMBERS = 3  # ensembles picked on validation: subsets of up to this many rows
CAPS = (2, 3, 4, 5)  # the caps the table reports side by side (validation rises with the cap by construction)
assert MAX_MEMBERS in CAPS
PROTOCOL = {"none": "random stratified 8:1:1 (`--groups none`, the literature's protocol)",
            "near-duplicates": "group-aware 8:1:1 (`--groups near-duplicates`: near-duplicates never cross parts)"}
PUBLISHED = [("MultiSentiNet", 0.698), ("CoMN", 0.705), ("MGNNS", 0.738), ("CLMLF", 0.753), ("MDSE", 0.762),
             ("multi-channel (2024)", 0.770)]


def expected_rows() -> list[tuple[str, str, str, dict[str, Any]]]:
    """The fine-tuned rows issue 13 asks for beyond the frozen grid, per protocol: (mode, fusion, what to call its
    recipe, the train-config fields a record needs to belong to it). A row that has none of its 5 seeds yet has no
    line in the table, so without this list a missing row would not make the table PARTIAL."""
    from jftzoo.default_plugins.fusions import PAPER_RECIPE
    from jftzoo.train.presets import RECIPES

    def fields_of(recipe: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in recipe.items() if k != "mode"}

    best = fields_of(RECIPES["best"])
    return [("joint", "concat", "`--recipe best`", best),
            ("joint", "text-only", "`--recipe best`", best),
            ("joint", "image-only", "`--recipe best`", best),
            ("joint", "attention-paper", "the paper's recipe", fields_of(PAPER_RECIPE)),
            ("joint", "concat", "`--recipe automm`", fields_of(RECIPES["automm"]))]


def recipe_name(record: dict[str, Any]) -> str | None:
    """The named recipe a fine-tuned record was trained with (expected_rows' names) and any option given on top
    (`--recipe best --average-top 3`), so that two rows of one mode and head read apart in every line; None for
    frozen records and unnamed settings."""
    if record.get("mode") == "frozen" or record.get("members"):
        return None
    for mode, _, name, recipe in expected_rows():
        if record.get("mode") == mode and has_recipe(record.get("train_config"), recipe):
            extra = options_text(fields_beyond(record, recipe))
            if not extra:
                return name
            return f"{name[:-1]} {extra}`" if name.endswith("`") else f"{name} + `{extra}`"
    return None


def row_name(record: dict[str, Any]) -> str:
    """A row's name in prose: mode and head, and its recipe where it has a named one."""
    recipe = recipe_name(record)
    return (f"{record['mode']} {record['fusion']}{seed_ensemble_mark(record.get('train_config'))}"
            + (f" ({recipe})" if recipe else ""))


def readable(line: str, by_hash: dict[str, list[dict[str, Any]]]) -> str:
    """The table's prose in its own names: an ensemble member the library tells apart by its recipe and any
    option on top of it ("joint concat (automm --average-top 3)") or, where no recipe names it, by its hash
    ("frozen concat [ba08e915]") reads as the table's rows do ("joint concat (`--recipe automm --average-top 3`)",
    "frozen concat (average_top=3)")."""
    from jftzoo.train.presets import RECIPES

    names = "|".join(re.escape(n) for n in RECIPES)
    line = re.sub(rf"\b((?:top-k|joint) [\w-]+) \(({names})((?: --[\w-]+(?: [^\s()-][^\s()]*)?)*)\)",
                  r"\1 (`--recipe \2\3`)", line)
    for config, records in by_hash.items():
        if f"[{config[:8]}]" in line:
            line = line.replace(f"[{config[:8]}]", f"({recipe_name(records[0]) or setting(records[0])})")
    return line


def missing_rows(records: list[dict[str, Any]]) -> tuple[list[str], set[str]]:
    """Each expected row (expected_rows) with fewer than 5 seeds on a protocol, as "groups mode fusion (recipe)
    (n/5)", and the config hashes of the records counted (their rows need no second mention); a record belongs to
    a row when its train config has every one of the recipe's fields (a field it lacks at TrainConfig's default) and no
    option on top of them (recipe_name: a checkpoint soup of a recipe is another row).
    """
    out, counted = [], set()
    for groups in PROTOCOL:
        part = [r for r in records if (r.get("protocol") or {}).get("groups") == groups and not r.get("members")]
        named = [(r, recipe_name(r)) for r in part]  # once per record, not once per expected row
        for mode, fusion, name, _ in expected_rows():
            mine = [r for r, its in named if r["mode"] == mode and r["fusion"] == fusion and its == name]
            seeds = {r["seed"] for r in mine}
            if len(seeds) < SEEDS:
                out.append(f"{groups} {mode} {fusion} ({name}) ({len(seeds)}/{SEEDS})")
                counted |= {r["config_hash"] for r in mine}
    return out, counted


def setting(record: dict[str, Any]) -> str:
    """The training fields of a record that differ from TrainConfig's defaults (what makes its row)."""
    if record.get("selection"):
        sel = record["selection"]
        return (f"picked on validation: best mean val {sel['metric']} of {sel['subsets']} subsets of up to "
                f"{sel['max_members']} of {sel['candidates']} rows")
    defaults = field_defaults()
    tc = record.get("train_config", {})
    skip = {"mode", "seed", "head", "min_epochs", "max_epochs"}
    diff = [f"{k}={v}" for k, v in sorted(tc.items()) if k not in skip and k in defaults and v != defaults[k]]
    if record["mode"] != "frozen" or tc.get("max_epochs", 10) != 10:
        diff.insert(0, f"epochs<={tc.get('max_epochs')}")
    recipe = recipe_name(record)
    return (f"{recipe}: " if recipe else "") + (", ".join(diff) or "defaults")


def ran_on(records: list[dict[str, Any]]) -> str:
    return "+".join(sorted({device_label(x) for x in records}))


def trained(records: list[dict[str, Any]], by_key: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The records that were trained: an ensemble's members in its place (an ensemble trains nothing itself)."""
    return [m for r in records for m in ([by_key[k] for k in r["members"]] if r.get("members") else [r])]


def train_minutes(records: list[dict[str, Any]]) -> str:
    """Training minutes summed over the row's records, per device when its seeds ran on several (a CPU's
    minutes and a GPU's are not the same unit)."""
    per: dict[str, float] = {}
    for x in records:
        per[device_label(x)] = per.get(device_label(x), 0.0) + x.get("train_s", x.get("wall_s", 0.0)) / 60
    if len(per) == 1:
        return f"{next(iter(per.values())):.1f}"
    return " + ".join(f"{m:.1f} {d}" for d, m in sorted(per.items()))


def chosen_on_validation(part: list[dict[str, Any]], by_hash: dict[str, list[dict[str, Any]]]) -> str:
    """Which row validation picks. Rows run on different seeds are not comparable by their means, so each pair
    of rows is compared on the seeds both have (at least 2): a row's score is the pairs it wins minus those it
    loses on mean validation accuracy (a Copeland ranking); test figures are shown, never used."""
    candidates = [r for r in part if r["fusion"] != "majority" and (not r["fusion"].startswith("ensemble")
                                                                    or by_hash[r["config_hash"]][0].get("selection"))]
    val = {r["config_hash"]: {x["seed"]: x["val_metrics"]["accuracy"] for x in by_hash[r["config_hash"]]
                              if x.get("val_metrics")} for r in candidates}
    test = {r["config_hash"]: {x["seed"]: x["metrics"]["accuracy"] for x in by_hash[r["config_hash"]]}
            for r in candidates}

    def mean(scores: dict[int, float], seeds: set[int]) -> float:
        return sum(scores[s] for s in seeds) / len(seeds)

    def name(r: dict[str, Any]) -> str:
        return row_name({**by_hash[r["config_hash"]][0], "mode": r["mode"], "fusion": r["fusion"]})

    score = {r["config_hash"]: 0 for r in candidates}
    compared = {r["config_hash"]: 0 for r in candidates}
    for a in candidates:
        for b in candidates:
            shared = set(val[a["config_hash"]]) & set(val[b["config_hash"]])
            if a is b or len(shared) < 2:
                continue
            compared[a["config_hash"]] += 1
            diff = mean(val[a["config_hash"]], shared) - mean(val[b["config_hash"]], shared)
            score[a["config_hash"]] += (diff > 0) - (diff < 0)
    ranked = sorted((r for r in candidates if compared[r["config_hash"]]), key=lambda r: score[r["config_hash"]],
                    reverse=True)
    if len(ranked) < 2:
        return ""
    first, second = ranked[0], ranked[1]
    shared = set(val[first["config_hash"]]) & set(val[second["config_hash"]])
    head = (f"Chosen on validation (each pair of rows compared on the seeds both have, at least 2; wins minus "
            f"losses): {name(first)} ({score[first['config_hash']]:+d} of {compared[first['config_hash']]} pairs), "
            "then "
            + ", ".join(f"{name(r)} ({score[r['config_hash']]:+d})" for r in ranked[1:4]) + ".")
    if len(shared) >= 2:
        seeds = ", ".join(map(str, sorted(shared)))
        head += (f" {name(first)} against {name(second)} on seeds {seeds}: validation "
                 f"{mean(val[first['config_hash']], shared):.3f} vs {mean(val[second['config_hash']], shared):.3f} "
                 f"(their test {mean(test[first['config_hash']], shared):.3f} vs "
                 f"{mean(test[second['config_hash']], shared):.3f}).")
    left_out = [name(r) for r in candidates if not compared[r["config_hash"]]]
    return head + (f" Not ranked yet (fewer than 2 seeds shared with any row): {', '.join(left_out)}."
                   if left_out else "")


def searched_caps(records: list[dict[str, Any]], results: Path) -> tuple[dict[int, dict[str, Any]],
                                                                         dict[int, dict[str, str]]]:
    """Each cap's pick per protocol (CAPS; MAX_MEMBERS's is the table's), and per cap the protocols it was not
    searched on, with why: the library scores at most MAX_SUBSETS subsets, and a cap beside the pick's is shown,
    not chosen from, so one beyond that bound is said, not a failed table (the pick's own cap still fails)."""
    from jftzoo.bench.ensemble_select import TooManySubsets, select_ensembles

    caps: dict[int, dict[str, Any]] = {n: {} for n in CAPS}
    unsearched: dict[int, dict[str, str]] = {n: {} for n in CAPS}
    for groups in PROTOCOL:
        part = [r for r in records if (r.get("protocol") or {}).get("groups") == groups]
        for n in CAPS:
            try:
                caps[n].update({str(c.protocol.get("groups")): c for c in select_ensembles(part, results, n)})
            except TooManySubsets as e:
                if n == MAX_MEMBERS:
                    raise
                unsearched[n][groups] = (f"{e.subsets:,} subsets of {e.rows} rows, above the {e.limit:,} the "
                                         "library scores")
    return caps, unsearched


def pick_lines(mixed: Any, frozen: Any) -> list[str]:
    """What validation's ensemble search picked, over all complete rows and over frozen rows only."""
    out = []
    for choice, scope in ((mixed, "all rows"), (frozen, "frozen rows only")):
        if choice is None:
            continue
        test = (sum(r["metrics"]["accuracy"] for r in choice.records) / len(choice.records)) if choice.records \
            else None
        out.append(f"Ensemble search over {scope} (every subset of up to {MAX_MEMBERS} of the {choice.candidates} "
                   f"rows on all {len(choice.units)} splits, {choice.subsets} subsets, probabilities averaged, "
                   f"mean validation accuracy): picks {' + '.join(choice.members)}, validation "
                   f"{choice.val_score:.3f} (the search's maximum, so optimistic)"
                   + (f", test {test:.3f}" if test is not None else " (a single row: no ensemble row added)")
                   + (f". Not candidates (missing splits): {', '.join(choice.left_out)}." if choice.left_out
                      else "."))
    return out + ([""] if out else [])


def fmt(row: dict[str, Any], metric: str) -> str:
    mean, sd, ci = row.get(f"{metric}_mean"), row.get(f"{metric}_std"), row.get(f"{metric}_ci95")
    if mean is None:
        return "—"
    text = f"{mean:.3f} ± {sd:.3f}" if sd is not None else f"{mean:.3f}"
    return text + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci and ci[0] is not None else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results" / "mvsa_single")
    parser.add_argument("--resamples", type=int, default=1000)
    args = parser.parse_args()

    from jftzoo.bench.compare import on_shared_splits, paired_compare, split_unit
    from jftzoo.bench.ensemble import ensemble_records
    from jftzoo.bench.ensemble_select import select_ensembles
    from jftzoo.bench.report import summarize, to_json
    from jftzoo.bench.store import ResultStore
    from jftzoo.errors import JftzooError

    records = ResultStore(args.results).records()
    records += ensemble_records([r for r in records if r["mode"] == "frozen"], args.results)
    # The cap is a choice too: what each would have picked is shown, not chosen from; MAX_MEMBERS's is the pick.
    caps, unsearched = searched_caps(records, args.results)
    picks: dict[tuple[str, str], Any] = {(g, "any"): c for g, c in caps[MAX_MEMBERS].items()}  # (groups, scope)
    for choice in select_ensembles(records, args.results, MAX_MEMBERS, modes=("frozen",)):
        picks[(str(choice.protocol.get("groups")), "frozen")] = choice
    records += list({r["key"]: r for c in picks.values() for r in c.records}.values())
    rows = [r for r in summarize(records) if not r["outdated"]]
    by_hash: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        by_hash.setdefault(r["config_hash"], []).append(r)
    by_key = {r["key"]: r for r in records}
    lines = ["# MVSA-Single: the answer table (MiniLM-L6 + EfficientNet-Lite0)", ""]
    expected, counted = missing_rows(records)
    short = [f"{r['groups']} {row_name({**by_hash[r['config_hash']][0], 'fusion': r['fusion']})} ({r['n_seeds']}/5)"
             for r in rows
             if r["n_seeds"] < SEEDS and r["config_hash"] not in counted]
    if short or expected:
        lines += ["**PARTIAL:** rows with fewer than 5 seeds so far: " + "; ".join(expected + short)
                  + ". The commands above resume where they stopped.", ""]
    comparisons = []
    for groups in ("none", "near-duplicates"):
        part = [r for r in rows if r["groups"] == groups]
        if not part:
            lines += [f"## {PROTOCOL[groups]}", "", "Not run yet.", ""]
            continue
        lines += [f"## {PROTOCOL[groups]}", "",
                  "| mode | fusion | setting | seeds | accuracy | weighted-F1 | macro-F1 | AUC | val accuracy "
                  "| train min | ran on |", "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|"]
        for r in part:
            first = by_hash[r["config_hash"]][0]
            made = trained(by_hash[r["config_hash"]], by_key)
            minutes = train_minutes(made)
            head = r["fusion"] + seed_ensemble_mark(r["train_config"])
            lines.append(f"| {r['mode']} | {head} | {setting(first)} | {r['n_seeds']} | "
                         f"{fmt(r, 'accuracy')} | {fmt(r, 'f1_weighted')} | {fmt(r, 'f1_macro')} | {fmt(r, 'auc')} | "
                         f"{fmt(r, 'val_accuracy')} | {minutes} | {ran_on(made)} |")
        lines.append("")
        choice = chosen_on_validation(part, by_hash)
        if choice:
            lines += [choice, ""]
        lines += pick_lines(picks.get((groups, "any")), picks.get((groups, "frozen")))
        base = next((r for r in part if r["fusion"] == "concat" and r["mode"] == "frozen"
                     and setting(by_hash[r["config_hash"]][0]) == "defaults"), None)
        if base is None:
            continue
        rows_cmp = []
        for r in part:
            if r is base or r["fusion"] in ("majority",) or (r["fusion"].startswith("ensemble")
                                                              and not by_hash[r["config_hash"]][0].get("selection")):
                continue
            a, b = by_hash[r["config_hash"]], by_hash[base["config_hash"]]
            try:
                a, b, _, _ = on_shared_splits(a, b)
            except JftzooError:  # no split in common: nothing to pair
                continue
            c = paired_compare(args.results, r, base, a, b, "accuracy", args.resamples).to_dict()
            c["groups"], c["setting"] = groups, setting(a[0])
            comparisons.append(c)
            where = "" if ran_on(trained(a, by_key)) == "CPU" else f", {ran_on(trained(a, by_key))}"
            head = r["fusion"] + seed_ensemble_mark(r["train_config"])
            rows_cmp.append(f"| {r['mode']} {head} ({c['setting']}{where}) | {c['a_mean']:.3f} | "
                            f"{c['b_mean']:.3f} | {c['diff']:+.3f} | [{c['ci95'][0]:+.3f}, {c['ci95'][1]:+.3f}] | "
                            f"{c['p_value']:.3f} | "
                            f"{c['n_pairs']} ({c['n_splits']}) |")
        lines += ["Paired against frozen concat (defaults) on the same test records: accuracy diff, 95 % CI from a "
                  f"paired bootstrap within splits, p from a paired permutation test ({args.resamples} resamples).",
                  "", "| row | accuracy | frozen concat | diff | 95 % CI | p | pairs (splits) |",
                  "|---|---:|---:|---:|---:|---:|---:|", *rows_cmp, ""]
        mixed, frozen = picks.get((groups, "any")), picks.get((groups, "frozen"))
        if mixed and frozen and mixed.records and frozen.records and mixed.member_hashes != frozen.member_hashes:
            a, b = mixed.records, frozen.records
            row_a = next(r for r in part if r["config_hash"] == a[0]["config_hash"])
            row_b = next(r for r in part if r["config_hash"] == b[0]["config_hash"])
            c = paired_compare(args.results, row_a, row_b, a, b, "accuracy", args.resamples).to_dict()
            c["groups"], c["setting"] = groups, "validation's pick against the frozen-only pick"
            comparisons.append(c)
            lines += ["Does fine-tuning add to ensembling? Validation's pick over all rows "
                      f"({' + '.join(mixed.members)}"
                      f") against its pick among frozen rows only ({' + '.join(frozen.members)}), same test records: "
                      f"{c['a_mean']:.3f} vs {c['b_mean']:.3f}, diff {c['diff']:+.3f}, 95 % CI "
                      f"[{c['ci95'][0]:+.3f}, {c['ci95'][1]:+.3f}], p {c['p_value']:.3f} "
                      f"({c['n_pairs']} pairs, {c['n_splits']} splits).", ""]
        cap_cells = []
        for n, by_groups in caps.items():
            if groups in unsearched[n]:
                cap_cells.append(f"up to {n}: not searched ({unsearched[n][groups]})")
                continue
            choice = by_groups.get(groups)
            if choice is None:
                continue
            if not choice.records:
                cap_cells.append(f"up to {n}: {' + '.join(choice.members)} alone (validation {choice.val_score:.3f})")
                continue
            a = choice.records
            units = {split_unit(y) for y in a}
            b = [x for x in by_hash[base["config_hash"]] if split_unit(x) in units]
            c = paired_compare(args.results, summarize(a)[0], base, a, b, "accuracy", args.resamples).to_dict()
            cap_cells.append(f"up to {n}: {' + '.join(choice.members)}, validation {choice.val_score:.3f}, test "
                             f"{c['a_mean']:.3f}, {c['diff']:+.3f} [{c['ci95'][0]:+.3f}, {c['ci95'][1]:+.3f}]")
        if cap_cells:
            lines += ["The size cap of the ensemble search is a choice too, and validation cannot make it (a larger "
                      "cap never scores lower on validation): what each cap picks, its test accuracy and its paired "
                      "difference to frozen concat (95 % CI): " + "; ".join(cap_cells) + ".", ""]
    lines += ["Published MVSA-Single accuracies (8:1:1 random splits, larger encoders): "
              + ", ".join(f"{n} {a:.3f}" for n, a in PUBLISHED) + ".", ""]
    lines = [readable(line, by_hash) for line in lines]
    out = args.results.parent / f"{args.results.name}.md"
    head = out.read_text(encoding="utf-8").split("<!-- table -->")[0] if out.exists() else ""
    out.write_text(head + "<!-- table -->\n\n" + "\n".join(lines) + "\n", encoding="utf-8")
    any_picks = {c.records[0]["config_hash"] for (_, scope), c in picks.items()
                 if scope == "any" and c.records}
    frozen_only = {c.records[0]["config_hash"] for (_, scope), c in picks.items() if scope == "frozen" and c.records}
    exported = [r for r in rows if r["config_hash"] not in frozen_only - any_picks]
    (args.results.parent / f"{args.results.name}.json").write_text(to_json(exported) + "\n", encoding="utf-8")
    (args.results.parent / f"{args.results.name}.compare.json").write_text(json.dumps(comparisons, indent=2) + "\n",
                                                                           encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
