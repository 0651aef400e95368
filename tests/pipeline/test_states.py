"""The state table: every pair of states checked, and the paths a file really takes."""

from __future__ import annotations

import itertools

import pytest

from dropbox_importer.pipeline.states import (
    ALLOWED,
    FileState,
    InvalidTransition,
    can_transition,
    check_transition,
)

S = FileState
EXPECTED = {
    (S.CLAIMED, S.SUBMITTING),
    (S.CLAIMED, S.SETTLING),
    (S.SUBMITTING, S.POLLING),
    (S.SUBMITTING, S.SETTLING),
    (S.POLLING, S.SUBMITTING),
    (S.POLLING, S.SETTLING),
    (S.SETTLING, S.DONE),
    (S.SETTLING, S.FAILED),
    # Written to after the claim: from any state but SETTLING, then a new round (or settled
    # with a reason when the file vanished meanwhile).
    (S.CLAIMED, S.CHANGED),
    (S.SUBMITTING, S.CHANGED),
    (S.POLLING, S.CHANGED),
    (S.DONE, S.CHANGED),
    (S.FAILED, S.CHANGED),
    (S.CHANGED, S.CLAIMED),
    (S.CHANGED, S.SETTLING),
}


@pytest.mark.parametrize(("old", "new"), list(itertools.product(FileState, FileState)))
def test_every_pair_is_allowed_exactly_when_listed(old: FileState, new: FileState) -> None:
    if (old, new) in EXPECTED:
        check_transition(old, new)
        assert can_transition(old, new)
    else:
        assert not can_transition(old, new)
        with pytest.raises(InvalidTransition) as info:
            check_transition(old, new)
        assert info.value.old is old and info.value.new is new
        assert old.value in str(info.value) and new.value in str(info.value)


def test_table_covers_every_state() -> None:
    assert set(ALLOWED) == set(FileState)


def test_only_done_and_failed_are_terminal_and_only_a_late_write_reopens_them() -> None:
    assert {s for s in FileState if s.terminal} == {S.DONE, S.FAILED}
    assert all(ALLOWED[s] == {S.CHANGED} for s in FileState if s.terminal)


def test_every_state_reaches_a_terminal_state() -> None:
    for start in FileState:
        seen, frontier = {start}, [start]
        while frontier:
            for nxt in ALLOWED[frontier.pop()]:
                if nxt not in seen:
                    seen.add(nxt)
                    frontier.append(nxt)
        assert seen & {S.DONE, S.FAILED}, start


def test_only_a_lost_batch_or_a_change_after_the_claim_goes_back() -> None:
    order = list(FileState)
    backwards = {
        (old, new)
        for old, targets in ALLOWED.items()
        for new in targets
        if order.index(new) <= order.index(old)
    }
    # Marketo lost a batch: its part is sent once more; a file written to after its claim is
    # imported again. Nothing ever leaves SETTLING backwards.
    assert backwards == {
        (S.POLLING, S.SUBMITTING),
        (S.CHANGED, S.CLAIMED),
        (S.CHANGED, S.SETTLING),
    }


def test_a_settled_file_may_only_be_reopened() -> None:
    with pytest.raises(InvalidTransition, match="allowed: changed"):
        check_transition(S.DONE, S.SETTLING)


def test_values_are_stable_strings_for_the_journal() -> None:
    assert [s.value for s in FileState] == [
        "claimed",
        "submitting",
        "polling",
        "settling",
        "done",
        "failed",
        "changed",
    ]
