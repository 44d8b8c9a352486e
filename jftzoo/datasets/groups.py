"""Near-duplicate groups, so that copies of one post never sit on two sides of a split.

Social-media corpora repeat themselves: retweets of one text, the same picture posted twice. A
model tested on a copy of a training post is tested on memory, not on generalisation. Two records
share a group when their normalised texts are equal or their image files are byte-identical; groups
are the connected components of both relations together (scipy's `connected_components`).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from jftzoo.datasets.records import Dataset, Record, file_digest

GROUPINGS = ("near-duplicates", "none")  # values of --groups
URL_PATTERN = re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)  # shared with datasets.tweets
_MENTION = re.compile(r"@\w+")
_LEADING_RT = re.compile(r"^\s*rt\b[\s:]*", re.IGNORECASE)
_NOT_WORD = re.compile(r"[\W_]+")


def normalize_text(text: str) -> str:
    """Lower-case; URLs, @mentions and a leading "RT" removed; punctuation and whitespace collapsed.

    Unicode NFKC first, so full-width or composed variants of one text compare equal.
    """
    text = unicodedata.normalize("NFKC", text).lower()
    text = URL_PATTERN.sub(" ", text)
    text = _LEADING_RT.sub("", text)  # "RT @user: ..." -> "@user: ..."
    text = _MENTION.sub(" ", text)
    text = _LEADING_RT.sub("", text)  # "@user RT ..." after the mention is gone
    return " ".join(_NOT_WORD.sub(" ", text).split())


@dataclass
class DuplicateGroups:
    """A group id per record (in `ids` order) and what joined them."""

    ids: list[str]
    group_of: list[int]  # group index per record
    text_links: int  # records whose normalised text equals an earlier record's
    image_links: int  # records whose image bytes equal an earlier record's

    @property
    def n_groups(self) -> int:
        return len(set(self.group_of))

    def members(self) -> list[list[str]]:
        """Groups with more than one record, largest first (ties by first id)."""
        by_group: dict[int, list[str]] = {}
        for rid, g in zip(self.ids, self.group_of, strict=True):
            by_group.setdefault(g, []).append(rid)
        multi = [sorted(m) for m in by_group.values() if len(m) > 1]
        return sorted(multi, key=lambda m: (-len(m), m[0]))

    def mapping(self) -> dict[str, int]:
        return dict(zip(self.ids, self.group_of, strict=True))


def duplicate_groups(records: Sequence[Record]) -> DuplicateGroups:
    """Connected components of "same normalised text" or "same image bytes".

    A text that normalises to nothing (only a URL or mentions) links nothing, else every link-only
    tweet would fall into one giant group; a missing image links nothing either.
    """
    import numpy as np
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    records = sorted(records, key=lambda r: r.id)
    first_text: dict[str, int] = {}
    first_image: dict[str, int] = {}
    rows: list[int] = []
    cols: list[int] = []
    text_links = image_links = 0
    for i, r in enumerate(records):
        key = normalize_text(r.text)
        if key:
            j = first_text.setdefault(key, i)
            if j != i:
                rows.append(i)
                cols.append(j)
                text_links += 1
        if r.image is not None and r.image.is_file():
            j = first_image.setdefault(file_digest(r.image), i)
            if j != i:
                rows.append(i)
                cols.append(j)
                image_links += 1
    n = len(records)
    graph = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    return DuplicateGroups([r.id for r in records], [int(x) for x in labels], text_links, image_links)


def groups_for(dataset: Dataset, grouping: str) -> DuplicateGroups | None:
    """The groups a split must respect under `--groups` (None: records are independent)."""
    if grouping == "none":
        return None
    if grouping != "near-duplicates":
        from jftzoo.errors import UsageError

        raise UsageError(f"--groups {grouping!r}: expected one of {', '.join(GROUPINGS)}")
    return duplicate_groups(dataset.records)


def crossing_groups(groups: DuplicateGroups, parts: dict[str, list[str]]) -> list[list[str]]:
    """Groups whose members sit in more than one part (e.g. an official split that leaks)."""
    part_of = {rid: name for name, ids in parts.items() for rid in ids}
    by_group: dict[int, list[str]] = {}
    for rid, g in zip(groups.ids, groups.group_of, strict=True):
        if rid in part_of:
            by_group.setdefault(g, []).append(rid)
    return [sorted(m) for m in by_group.values() if len({part_of[r] for r in m}) > 1]
