"""Splitting pairs by lecture: whole lectures, every split filled, no picture on two sides."""

from __future__ import annotations

import random

import polars as pl
import pytest

from mednarratives_assets.image_hashing import hash_distance
from mednarratives_assets.lecture_splits import split_by_lecture

THREE_WAY = {"train": 0.8, "validation": 0.1, "test": 0.1}


def lecture_pairs(lectures: list[tuple[str, str]], per_lecture: int = 3, seed: int = 0) -> pl.DataFrame:
    """Pairs with random 64-bit pHashes (two random ones lie about 32 bits apart, never within 6)."""
    rng = random.Random(seed)
    return pl.DataFrame(
        [
            {
                "channel": channel,
                "video_id": video_id,
                "pair_id": f"{channel}/{video_id}/{k}",
                "phash": f"{rng.getrandbits(64):016x}",
            }
            for channel, video_id in lectures
            for k in range(per_lecture)
        ]
    )


def flipped(phash: str, bits: int) -> str:
    """`phash` with its lowest `bits` bits flipped: exactly `bits` bits away."""
    return f"{int(phash, 16) ^ ((1 << bits) - 1):016x}"


def split_of(split, channel: str, video_id: str) -> str:
    [name] = split.lectures.filter(pl.col("channel") == channel, pl.col("video_id") == video_id)["split"]
    return name


def assert_no_picture_on_two_sides(split, distance: int = 6) -> None:
    for first, part in split.pairs.items():
        for second, other in split.pairs.items():
            if first < second:
                for a in part["phash"]:
                    assert all(hash_distance(a, b) > distance for b in other["phash"]), (first, second)


def test_lectures_stay_whole_every_pair_is_kept_and_the_seed_decides():
    lectures = [(channel, f"v{i}") for channel in ("a", "b") for i in range(20)]
    pairs = lecture_pairs(lectures)
    split = split_by_lecture(pairs, THREE_WAY, seed=0, duplicate_distance=6)
    assert list(split.pairs) == list(THREE_WAY) and not split.dropped_pair_ids
    assert sum(part.height for part in split.pairs.values()) == pairs.height
    sides = [set(part.select("channel", "video_id").iter_rows()) for part in split.pairs.values()]
    assert all(a.isdisjoint(b) for i, a in enumerate(sides) for b in sides[i + 1 :])
    assert split.lectures.height == len(lectures)
    again = split_by_lecture(pairs.reverse(), THREE_WAY, seed=0, duplicate_distance=6)
    assert again.lectures.equals(split.lectures)
    other_seed = split_by_lecture(pairs, THREE_WAY, seed=1, duplicate_distance=6)
    assert not other_seed.lectures.equals(split.lectures)


def test_adding_a_lecture_moves_no_other():
    lectures = [("a", f"v{i}") for i in range(40)]
    before = split_by_lecture(lecture_pairs(lectures), THREE_WAY, seed=0, duplicate_distance=6)
    assert all(part.height for part in before.pairs.values())  # no split was refilled
    added = lecture_pairs([*lectures, ("b", "new")])
    after = split_by_lecture(added, THREE_WAY, seed=0, duplicate_distance=6)
    assert after.lectures.filter(pl.col("channel") == "a").equals(before.lectures)


@pytest.mark.parametrize("seed", range(50))
def test_every_split_with_a_fraction_gets_a_lecture_once_there_are_enough(seed):
    three = lecture_pairs([("a", "x"), ("a", "y"), ("b", "x")])
    split = split_by_lecture(three, THREE_WAY, seed=seed, duplicate_distance=6)
    assert sorted(split.lectures["split"]) == sorted(THREE_WAY)
    six = lecture_pairs([(channel, video) for channel in "abc" for video in "xy"])
    held = split_by_lecture(six, {"train": 0.8, "held_out": 0.2}, seed=seed, duplicate_distance=6)
    assert set(held.lectures["split"]) == {"train", "held_out"}
    # A split without a fraction gets nothing, and too few lectures leave a split empty without error.
    unused = split_by_lecture(six, {"train": 0.9, "unused": 0.0, "test": 0.1}, seed, 6)
    assert unused.pairs["unused"].is_empty() and set(unused.lectures["split"]) == {"train", "test"}
    one = split_by_lecture(lecture_pairs([("a", "x")]), THREE_WAY, seed=seed, duplicate_distance=6)
    assert sum(part.height for part in one.pairs.values()) == 3


@pytest.mark.parametrize("seed", range(20))
def test_lectures_showing_one_picture_go_to_one_split_whole(seed):
    lectures = [("a", f"v{i}") for i in range(8)] + [("b", f"v{i}") for i in range(8)]
    pairs = lecture_pairs(lectures, seed=seed)
    # b/v0 shows a/v0's first picture 6 bits off, b/v1 shows a/v1's 7 bits off (another picture)
    shown = pairs.filter(pl.col("pair_id").is_in(["a/v0/0", "a/v1/0"]))["phash"]
    copies = pl.DataFrame(
        {
            "channel": ["b", "b"],
            "video_id": ["v0", "v1"],
            "pair_id": ["b/v0/copy", "b/v1/near"],
            "phash": [flipped(shown[0], 6), flipped(shown[1], 7)],
        }
    )
    split = split_by_lecture(pl.concat([pairs, copies]), THREE_WAY, seed=seed, duplicate_distance=6)
    assert split_of(split, "a", "v0") == split_of(split, "b", "v0") and not split.dropped_pair_ids
    assert sum(part.height for part in split.pairs.values()) == pairs.height + 2
    assert_no_picture_on_two_sides(split)
    [group] = set(split.lectures.filter(pl.col("video_id") == "v0")["group"])
    assert group == "a/v0"
    assert split.lectures.filter(pl.col("video_id") == "v1")["group"].to_list() == ["a/v1", "b/v1"]


@pytest.mark.parametrize("seed", range(10))
def test_one_picture_in_every_lecture_still_fills_each_split_and_drops_its_repeats(seed):
    pairs = lecture_pairs([(channel, video) for channel in "ab" for video in "xyz"], seed=seed)
    everywhere = pairs.with_columns(
        phash=pl.when(pl.col("pair_id").str.ends_with("/0"))
        .then(pl.lit("f0f0f0f0f0f0f0f0"))
        .otherwise("phash")
    )
    split = split_by_lecture(everywhere, THREE_WAY, seed=seed, duplicate_distance=6)
    assert sorted(set(split.lectures["split"])) == sorted(THREE_WAY)
    # the picture stays with train's lectures; the other lectures lose it and keep the rest
    outside_train = split.lectures.filter(pl.col("split") != "train")
    repeats = [f"{channel}/{video}/0" for channel, video, *_ in outside_train.iter_rows()]
    assert sorted(split.dropped_pair_ids) == sorted(repeats)
    assert all(part.height for part in split.pairs.values())
    assert_no_picture_on_two_sides(split)


@pytest.mark.parametrize(
    ("pairs", "fractions", "message"),
    [
        (pl.DataFrame({"channel": ["a"], "pair_id": ["p"]}), THREE_WAY, "lack the column(s) video_id, phash"),
        (lecture_pairs([("a", "x")]), {"train": 0.8, "test": 0.1}, "must add up to 1, got"),
        (lecture_pairs([("a", "x")]), {"train": 1.2, "test": -0.2}, "must be zero or more"),
        (lecture_pairs([("a", "x")]), {}, "one split at least"),
    ],
)
def test_bad_input_is_named(pairs, fractions, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        split_by_lecture(pairs, fractions, seed=0, duplicate_distance=6)


@pytest.mark.parametrize("seed", range(20))
def test_a_group_too_big_for_a_held_out_split_trains_instead(seed):
    """Four of five lectures show one picture (a lecturer reusing a slide): held out, that group
    would leave one pair to train on. It trains, and the lone lecture is held out."""
    pairs = lecture_pairs([("ch", f"v{i}") for i in range(5)], per_lecture=2, seed=seed)
    shared = pairs["phash"][2]
    pairs = pairs.with_columns(
        pl.when(pl.col("video_id").is_in(["v1", "v2", "v3", "v4"]) & (pl.col("pair_id").str.ends_with("/0")))
        .then(pl.lit(shared))
        .otherwise(pl.col("phash"))
        .alias("phash")
    )
    split = split_by_lecture(pairs, {"train": 0.8, "held_out": 0.2}, seed=seed, duplicate_distance=6)
    assert {split_of(split, "ch", f"v{i}") for i in range(1, 5)} == {"train"}
    assert split_of(split, "ch", "v0") == "held_out" and not split.dropped_pair_ids
