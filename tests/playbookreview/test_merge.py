"""The rebase's three-way merge, on plain documents: what each side changed, and what both did."""

from __future__ import annotations

from playbookreview.merge import changed_sections, three_way

BASE = {
    "severities": [{"level": 1, "response_minutes": 15}],
    "communication": {"summary_channel": "stakeholders", "routes": [1, 2]},
    "drills": ["kill-switch-test"],
}


def with_(doc: dict, **changes) -> dict:
    return {**doc, **changes}


def test_changes_on_different_sections_both_apply():
    mine = with_(BASE, severities=[{"level": 1, "response_minutes": 5}])
    theirs = with_(BASE, drills=["failover-test"])
    merged = three_way(BASE, mine, theirs)
    assert merged.clean
    assert merged.document == with_(BASE, severities=mine["severities"], drills=["failover-test"])


def test_changes_to_different_keys_of_a_mapping_section_both_apply():
    mine = with_(BASE, communication={"summary_channel": "execs", "routes": [1, 2]})
    theirs = with_(BASE, communication={"summary_channel": "stakeholders", "routes": [1, 2, 3]})
    merged = three_way(BASE, mine, theirs)
    assert merged.clean and merged.document["communication"] == {
        "summary_channel": "execs",
        "routes": [1, 2, 3],
    }


def test_the_same_key_changed_differently_is_a_conflict_named_by_its_path():
    mine = with_(BASE, communication={"summary_channel": "execs", "routes": [1, 2]})
    theirs = with_(BASE, communication={"summary_channel": "board", "routes": [1, 2]})
    merged = three_way(BASE, mine, theirs)
    assert merged.conflicts == ["communication.summary_channel"]
    assert merged.document["communication"]["summary_channel"] == "execs"
    taken = three_way(BASE, mine, theirs, take_theirs=True)
    assert taken.conflicts == ["communication.summary_channel"]
    assert taken.document["communication"]["summary_channel"] == "board"


def test_a_list_section_is_compared_whole():
    mine = with_(BASE, drills=["kill-switch-test", "a"])
    theirs = with_(BASE, drills=["b", "kill-switch-test"])
    assert three_way(BASE, mine, theirs).conflicts == ["drills"]


def test_the_same_change_on_both_sides_is_no_conflict():
    mine = theirs = with_(BASE, drills=[])
    merged = three_way(BASE, mine, theirs)
    assert merged.clean and merged.document["drills"] == []


def test_removals_and_additions_follow_the_side_that_made_them():
    mine = {k: v for k, v in BASE.items() if k != "drills"}  # the proposal drops a section
    theirs = with_(BASE, postmortems=[{"level": 1}])  # the version in force added one
    merged = three_way(BASE, mine, theirs)
    assert merged.clean
    assert list(merged.document) == ["severities", "communication", "postmortems"]
    # Removed by one side while changed by the other: a conflict.
    changed = with_(BASE, drills=["x"])
    assert three_way(BASE, mine, changed).conflicts == ["drills"]


def test_key_order_and_key_order_changes_do_not_count_as_changes():
    reordered = {k: BASE[k] for k in reversed(list(BASE))}
    assert changed_sections(BASE, reordered) == []
    assert changed_sections(BASE, with_(BASE, drills=[])) == ["drills"]
    assert changed_sections(BASE, {"severities": BASE["severities"]}) == ["communication", "drills"]
