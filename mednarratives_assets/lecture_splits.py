"""Pairs split by lecture into named splits (train, held_out; or train, validation, test).

A lecture is one video of one channel: (channel, video_id). The rules, in order:

1. Lectures that show the same picture, an image of one within `duplicate_distance` pHash bits
   of an image of the other (`image_hashing.py`), are tied into one group, and a group goes to one
   split whole. So no picture is in two splits and every pair is kept: a held-out copy of a
   training image would be a leak, and dropping it would lose a good pair for nothing.
2. Each group is placed by a hash of (seed, channel, video_id) of its first lecture, a number in
   [0, 1): split k takes the numbers between the sums of the fractions before it and through it.
   The place depends on the lecture alone, so adding a lecture moves no other (except one that
   ties groups together, one too big for its split, or one that refills an empty split, below).
   A group with more pairs than its split's share of all pairs (and more than one) goes to the
   split with the largest fraction instead: a lecturer who reuses one picture in most of a
   channel's lectures would otherwise hold out most of the data and leave little to train on.
3. When as many lectures as splits with a nonzero fraction are there, each such split gets one at
   least: a split left empty takes, from a split with two groups or more, the group whose number
   lies nearest its own range, among those that fit its share if any do. (By its hash alone, a
   small corpus can leave a split empty: a 6-lecture demo with 20% held out keeps none back a
   quarter of the time.)
4. Only when the groups are fewer than those splits, though the lectures are not (one picture
   shown in every lecture), are lectures placed one by one; then a pair whose image lies within
   `duplicate_distance` bits of a pair of an earlier split (in the order the splits are named) is
   dropped, and listed in `dropped_pair_ids`.

A group is never cut, so a picture shown in many lectures puts them all in one split, and the
splits' shares can then drift from their fractions; each split's lectures and pairs are counted
in `LectureSplit`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import polars as pl
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

LECTURE = ("channel", "video_id")
NEEDED_COLUMNS = (*LECTURE, "pair_id", "phash")
# Hashes compared with all others at a time: 256 against 100,000 pairs is 200 MB of uint64.
_BLOCK = 256


@dataclass(frozen=True)
class LectureSplit:
    """The pairs of each split (in the splits' order, rows in the input's order), the lectures with
    their split, and the pairs dropped as near-duplicates of an earlier split's (rule 4 only)."""

    pairs: dict[str, pl.DataFrame]
    lectures: pl.DataFrame  # channel, video_id, split, group (the first lecture of its group)
    dropped_pair_ids: list[str]


def lecture_position(seed: int, channel: str, video_id: str) -> float:
    """The lecture's number in [0, 1), from a hash of seed, channel and video."""
    digest = hashlib.sha1(f"{seed}/{channel}/{video_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def split_by_lecture(
    pairs: pl.DataFrame, fractions: Mapping[str, float], seed: int, duplicate_distance: int
) -> LectureSplit:
    """Split `pairs` (columns channel, video_id, pair_id, phash at least) by lecture into the
    splits named by `fractions` (each at least 0, together 1), by the rules in the module's doc."""
    _check(pairs, fractions)
    names = list(fractions)
    lectures = pairs.select(LECTURE).unique().sort(LECTURE)
    keys = list(lectures.iter_rows())
    linked = _near_duplicate_lectures(pairs, keys, duplicate_distance)
    _, group_of = connected_components(linked, directed=False)
    first_of_group = {}
    for index, group in enumerate(group_of):
        first_of_group.setdefault(group, index)  # keys are sorted: the group's first lecture
    n_filled = sum(1 for fraction in fractions.values() if fraction > 0)
    # Rule 4: with fewer groups than splits to fill, though not fewer lectures, lectures go one by one.
    groups_kept = len(first_of_group) >= n_filled or len(keys) < n_filled
    unit_of = [first_of_group[group] for group in group_of] if groups_kept else list(range(len(keys)))
    units = sorted(set(unit_of))
    position = {unit: lecture_position(seed, *keys[unit]) for unit in units}
    split_of_unit = _place(units, position, _pairs_per_unit(pairs, keys, unit_of), fractions)
    lectures = lectures.with_columns(
        split=pl.Series([names[split_of_unit[unit]] for unit in unit_of], dtype=pl.Utf8),
        group=pl.Series(["/".join(keys[unit]) for unit in unit_of], dtype=pl.Utf8),
    )
    placed = pairs.join(
        lectures.select(*LECTURE, "split"), on=list(LECTURE), how="left", maintain_order="left"
    )
    parts = {name: placed.filter(pl.col("split") == name).drop("split") for name in names}
    dropped = [] if groups_kept else _drop_repeats_of_earlier_splits(parts, duplicate_distance)
    return LectureSplit(parts, lectures, dropped)


def _check(pairs: pl.DataFrame, fractions: Mapping[str, float]) -> None:
    missing = [column for column in NEEDED_COLUMNS if column not in pairs.columns]
    if missing:
        raise ValueError(f"pairs to split by lecture lack the column(s) {', '.join(missing)}")
    if not fractions or any(not fraction >= 0 for fraction in fractions.values()):
        raise ValueError(f"split fractions must be zero or more, one split at least, got {dict(fractions)}")
    if abs(sum(fractions.values()) - 1) > 1e-9:
        total = sum(fractions.values())
        raise ValueError(f"split fractions must add up to 1, got {dict(fractions)} (sum {total:g})")


def _hashes(phashes: pl.Series) -> np.ndarray:
    return np.array([int(value, 16) for value in phashes], dtype=np.uint64)


def _near_duplicate_lectures(pairs: pl.DataFrame, keys: list[tuple], duplicate_distance: int) -> coo_matrix:
    """Lecture by lecture: linked where an image of one lies within the distance of one of the other."""
    index = {key: i for i, key in enumerate(keys)}
    owner = np.array([index[key] for key in pairs.select(LECTURE).iter_rows()], dtype=np.int64)
    hashes = _hashes(pairs["phash"])
    rows, cols = [], []
    for start in range(0, len(hashes), _BLOCK):
        block = hashes[start : start + _BLOCK]
        near = np.bitwise_count(block[:, None] ^ hashes[None, :]) <= duplicate_distance
        a, b = np.nonzero(near)
        other_lecture = owner[a + start] != owner[b]
        rows.append(owner[a + start][other_lecture])
        cols.append(owner[b][other_lecture])
    rows_all = np.concatenate(rows) if rows else np.zeros(0, np.int64)
    cols_all = np.concatenate(cols) if cols else np.zeros(0, np.int64)
    return coo_matrix((np.ones(len(rows_all)), (rows_all, cols_all)), shape=(len(keys), len(keys)))


def _pairs_per_unit(pairs: pl.DataFrame, keys: list[tuple], unit_of: list[int]) -> dict[int, int]:
    per_lecture = dict(((c, v), n) for c, v, n in pairs.group_by(LECTURE).len().iter_rows())
    sizes: dict[int, int] = {}
    for key, unit in zip(keys, unit_of, strict=True):
        sizes[unit] = sizes.get(unit, 0) + per_lecture[key]
    return sizes


def _place(
    units: list[int], position: dict[int, float], size: dict[int, int], fractions: Mapping[str, float]
) -> dict[int, int]:
    """Each unit's split: the range its position falls in (the largest split for a unit too big for
    it), then every empty nonzero split refilled."""
    shares = list(fractions.values())
    bounds = np.cumsum(shares)
    ranges = list(zip(np.concatenate([[0.0], bounds[:-1]]), bounds, strict=True))
    capacity = [share * sum(size.values()) for share in shares]
    largest = int(np.argmax(shares))
    last_filled = max(split for split, share in enumerate(shares) if share > 0)

    def fits(unit: int, split: int) -> bool:
        return size[unit] <= max(capacity[split], 1)

    split_of = {}
    for u in units:
        # side="right" skips zero-width ranges; a position past a sum just under 1 goes to the last range
        split = min(int(np.searchsorted(bounds, position[u], side="right")), last_filled)
        split_of[u] = split if fits(u, split) else largest
    for split, share in enumerate(shares):
        if share == 0 or split in split_of.values():
            continue
        counts = np.bincount(list(split_of.values()), minlength=len(bounds))
        donors = [u for u in units if counts[split_of[u]] >= 2]
        if not donors:  # fewer units than nonzero splits: nothing to spare
            break
        low, high = ranges[split]
        split_of[
            min(
                donors,
                key=lambda u: (not fits(u, split), max(low - position[u], position[u] - high, 0.0), u),
            )
        ] = split
    return split_of


def _drop_repeats_of_earlier_splits(parts: dict[str, pl.DataFrame], duplicate_distance: int) -> list[str]:
    """Drop, in place, each pair whose image lies within the distance of a kept one of an earlier split."""
    dropped: list[str] = []
    earlier = np.zeros(0, dtype=np.uint64)
    for name, part in parts.items():
        hashes = _hashes(part["phash"])
        repeats = [
            pair_id
            for pair_id, phash in zip(part["pair_id"], hashes, strict=True)
            if len(earlier) and (np.bitwise_count(earlier ^ phash) <= duplicate_distance).any()
        ]
        kept = part.filter(~pl.col("pair_id").is_in(repeats))
        parts[name] = kept
        dropped += repeats
        earlier = np.concatenate([earlier, _hashes(kept["phash"])])
    return dropped
