"""A short run of txn_chaos.py: transactions committed, aborted and fenced while a leader is
killed, a follower paused, the active controller killed and a leader cut off from the other
nodes; the long run is part of `make chaos`.
"""

from __future__ import annotations

import pytest

import txn_chaos
from test_chaos import FAULTS, SETTINGS


def test_transactions_stay_atomic_under_faults(tmp_path):
    """Every committed record is read exactly once at read_committed, no aborted, fenced or
    unfinished transaction's record is ever read, readers' offsets only increase and agree with
    the final log, and a fenced producer's commit fails; transactions commit while the faults
    last."""
    settings = txn_chaos.Settings(faults=FAULTS, **{**SETTINGS, "seed": SETTINGS["seed"] + 1})
    report = txn_chaos.run(tmp_path, settings, check=False)
    if report.violations:
        pytest.fail(report.render(), pytrace=False)
    injected = {fault.name for fault in report.faults if fault.target != "(none)"}
    assert injected == set(report.faults_enabled), (
        f"faults injected: {sorted(injected)}\n{report.render()}")
    assert report.txn_history.committed_during_faults > 0, report.render()
    assert report.zombie_commits > 0, report.render()
