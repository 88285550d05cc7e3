"""Persistent person ids: stability, merges, splits, tie-breaks and the change feed."""

from __future__ import annotations

from datetime import datetime

from jobs.golden.ids import assign_person_ids

RUN_AT = datetime(2026, 11, 1, 12, 0, 0)


def _assign(clusters, previous, run_id="r1", epoch=0, anchors=None, known=None):
    imap, changes = assign_person_ids(clusters, previous, run_id, RUN_AT, epoch, anchors, known)
    m = {r.record_key: r.person_id for r in imap.collect()}
    c = sorted(
        (r.change, r.person_id, r.related_person_id, r.records, r.run_id) for r in changes.collect()
    )
    return m, c, imap


def test_first_run_gives_new_deterministic_ids(make_clusters, anchored_of):
    clusters = make_clusters([["a", "b"], ["c"]])
    m, c, imap = _assign(clusters, None)
    pa, pc = anchored_of("a"), anchored_of("c")
    assert m == {"a": pa, "b": pa, "c": pc}
    assert c == sorted([("new", pa, None, 2, "r1"), ("new", pc, None, 1, "r1")])
    assert {(r.record_key, r.first_seen_run, r.run_id) for r in imap.collect()} == {
        ("a", "r1", "r1"), ("b", "r1", "r1"), ("c", "r1", "r1")
    }
    # the same input again (fresh lake) gives the same ids
    m2, _, _ = _assign(clusters, None, run_id="other-run")
    assert m2 == m
    assert pa.startswith("P") and len(pa) == 25 and pa not in ("a", "b", "c")


def test_same_input_twice_keeps_ids_and_logs_nothing(make_clusters):
    clusters = make_clusters([["a", "b"], ["c"], ["d", "e", "f"]])
    m1, _, imap1 = _assign(clusters, None, "r1", 0)
    m2, c2, imap2 = _assign(clusters, imap1, "r2", 1)
    assert m2 == m1
    assert c2 == []
    assert {r.record_key: r.first_seen_run for r in imap2.collect()} == {k: "r1" for k in "abcdef"}


def test_new_records_change_no_ids_but_logged_merges(make_clusters, make_map, anchored_of):
    prev = make_map({"a": "P1", "b": "P1", "c": "P2", "d": "P3", "e": "P4"})
    # x joins P1's cluster, y and z form a new person, P3 and P4 merge through new record w
    clusters = make_clusters([["a", "b", "x"], ["c"], ["y", "z"], ["d", "e", "w"]])
    m, c, _ = _assign(clusters, prev, "r2", 1)
    assert m == {"a": "P1", "b": "P1", "x": "P1", "c": "P2", "y": anchored_of("y"), "z": anchored_of("y"),
                 "d": "P3", "e": "P3", "w": "P3"}
    assert c == sorted([("new", anchored_of("y"), None, 2, "r2"), ("merged", "P4", "P3", 1, "r2")])


def test_merge_keeps_the_larger_side(make_clusters, make_map):
    prev = make_map({"a": "P9", "b": "P9", "c": "P1", "d": "P1", "e": "P1"})
    m, c, imap = _assign(make_clusters([["a", "b", "c", "d", "e"]]), prev, "r2", 1)
    assert set(m.values()) == {"P1"}
    assert c == [("merged", "P9", "P1", 2, "r2")]
    first = {r.record_key: r.first_seen_run for r in imap.collect()}
    assert first == {"a": "r2", "b": "r2", "c": "r0", "d": "r0", "e": "r0"}


def test_merge_tie_keeps_the_older_then_smaller_id(make_clusters, make_map):
    mapping = {"a": "P1", "b": "P1", "c": "P2", "d": "P2"}
    older_p2 = make_map(mapping, first_seen={"P1": "golden-20260301", "P2": "golden-20260101"})
    m, c, _ = _assign(make_clusters([["a", "b", "c", "d"]]), older_p2, "r2", 1)
    assert set(m.values()) == {"P2"} and c == [("merged", "P1", "P2", 2, "r2")]
    same_age = make_map(mapping)
    m, c, _ = _assign(make_clusters([["a", "b", "c", "d"]]), same_age, "r2", 1)
    assert set(m.values()) == {"P1"} and c == [("merged", "P2", "P1", 2, "r2")]


def test_split_leaves_id_with_largest_part(make_clusters, make_map, anchored_of):
    prev = make_map({k: "P1" for k in "abcde"})
    m, c, _ = _assign(make_clusters([["a", "b"], ["c", "d", "e"]]), prev, "r2", 1)
    new = anchored_of("a")
    assert m == {"a": new, "b": new, "c": "P1", "d": "P1", "e": "P1"}
    # the id born from the split has its 'new' row (a consumer of new ids sees it) and its 'split' row
    assert c == [("new", new, None, 2, "r2"), ("split", new, "P1", 2, "r2")]


def test_an_anchored_id_issued_before_is_salted(spark, make_clusters, make_map, anchored_of, salted_of):
    # {a..e} was anchored at 'a' (its id anchored('a')); the part {a, b} splits off and would be
    # anchored at 'a' again: that id was issued before, so it gets the epoch-salted id instead.
    first = anchored_of("a")
    prev = make_map({k: first for k in "abcde"})
    clusters = make_clusters([["a", "b"], ["c", "d", "e"]])
    m, c, _ = _assign(clusters, prev, "r2", 3)
    assert m == {"a": salted_of(3, "a"), "b": salted_of(3, "a"), "c": first, "d": first, "e": first}
    # ids known only from the change feed (retired long ago) are never re-issued either
    gone = spark.createDataFrame([(anchored_of("c"),)], "person_id string")
    m2, _, _ = _assign(make_clusters([["c", "d"]]), None, "r3", 4, known=gone)
    assert m2 == {"c": salted_of(4, "c"), "d": salted_of(4, "c")}


def test_the_oldest_record_anchors_a_new_cluster(spark, make_clusters, anchored_of):
    from datetime import datetime

    anchors = spark.createDataFrame(
        [("a", datetime(2024, 5, 1)), ("b", datetime(2019, 1, 1)), ("c", None), ("d", datetime(2023, 1, 1))],
        "record_key string, anchor_at timestamp",
    )
    m, c, _ = _assign(make_clusters([["a", "b", "c"], ["c2", "d"]]), None, "r1", 0, anchors=anchors)
    # b is the oldest of {a, b, c}; in {c2, d} only d has a time (no time sorts last)
    assert m == {"a": anchored_of("b"), "b": anchored_of("b"), "c": anchored_of("b"), "c2": anchored_of("d"), "d": anchored_of("d")}


def test_split_tie_goes_to_the_part_with_the_smallest_key(make_clusters, make_map, anchored_of):
    prev = make_map({k: "P1" for k in "abcd"})
    m, c, _ = _assign(make_clusters([["c", "d"], ["a", "b"]]), prev, "r2", 1)
    assert m == {"a": "P1", "b": "P1", "c": anchored_of("c"), "d": anchored_of("c")}
    assert c == [("new", anchored_of("c"), None, 2, "r2"), ("split", anchored_of("c"), "P1", 2, "r2")]


def test_change_feed_contract_one_new_row_per_id_issued(make_clusters, make_map, anchored_of):
    """golden.id_changes contract: every id issued in a run has exactly one 'new' row (records = its
    cluster size), whether it holds only new records, split off, or split off with new records;
    split rows say where moved records came from; ids kept by a cluster get no 'new' row."""
    # P1 {a..f} splits in three: {a, b, c} keeps P1; {d, e} and {f, x (new)} get new ids.
    # P2 {g, h} and P3 {i} merge; P4 {j} takes k (new). {y, z} is all new.
    prev = make_map({**{k: "P1" for k in "abcdef"}, "g": "P2", "h": "P2", "i": "P3", "j": "P4"})
    clusters = make_clusters([["a", "b", "c"], ["d", "e"], ["f", "x"], ["g", "h", "i"], ["j", "k"], ["y", "z"]])
    m, c, _ = _assign(clusters, prev, "r2", 1)
    issued = set(m.values()) - {"P1", "P2", "P3", "P4"}
    assert issued == {anchored_of("d"), anchored_of("f"), anchored_of("y")}
    new_rows = [(pid, records) for change, pid, related, records, _ in c if change == "new"]
    assert sorted(new_rows) == sorted([(anchored_of("d"), 2), (anchored_of("f"), 2), (anchored_of("y"), 2)])
    assert all(related is None for change, _, related, _, _ in c if change == "new")
    assert c == sorted([
        ("new", anchored_of("d"), None, 2, "r2"),
        ("new", anchored_of("f"), None, 2, "r2"),
        ("new", anchored_of("y"), None, 2, "r2"),
        ("split", anchored_of("d"), "P1", 2, "r2"),
        ("split", anchored_of("f"), "P1", 1, "r2"),
        ("merged", "P3", "P2", 1, "r2"),
    ])


def test_split_and_merge_in_one_run_and_retired(make_clusters, make_map):
    # P1 {a,b,c,d}: d leaves to join P2 {e,f}; P3 {g} is gone entirely
    prev = make_map({"a": "P1", "b": "P1", "c": "P1", "d": "P1", "e": "P2", "f": "P2", "g": "P3"})
    m, c, _ = _assign(make_clusters([["a", "b", "c"], ["d", "e", "f"]]), prev, "r2", 1)
    assert m == {"a": "P1", "b": "P1", "c": "P1", "d": "P2", "e": "P2", "f": "P2"}
    assert c == sorted([("split", "P2", "P1", 1, "r2"), ("retired", "P3", None, 1, "r2")])
