"""FailureLog: a failing destination is logged once per outage, at INFO; repeats at DEBUG."""

from __future__ import annotations

import logging
import threading

import pytest

from esgf_nodemgr.runtime.logonce import FailureLog

NAME = "test.logonce"


def records(caplog: pytest.LogCaptureFixture, level: int) -> list:
    return [r.getMessage() for r in caplog.records if r.name == NAME and r.levelno == level]


def test_first_failure_at_info_repeats_at_debug_recovery_at_info(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger=NAME)
    log = FailureLog(logging.getLogger(NAME))
    for i in range(5):
        log.failed(("send", "sn2"), "messages to %s not delivered: %s", "sn2", f"error {i}")
    assert records(caplog, logging.INFO) == [
        "messages to sn2 not delivered: error 0 (repeats logged at DEBUG until it works again)"]
    assert len(records(caplog, logging.DEBUG)) == 4
    assert records(caplog, logging.DEBUG)[-1].endswith("error 4 (failure 5 in a row)")
    assert log.failing() == {("send", "sn2"): 5}
    log.succeeded(("send", "sn2"), "messages to %s delivered again", "sn2")
    assert records(caplog, logging.INFO)[-1] == "messages to sn2 delivered again (after 5 failures)"
    assert log.failing() == {}
    # A new outage is told again.
    log.failed(("send", "sn2"), "messages to %s not delivered: %s", "sn2", "again")
    assert len(records(caplog, logging.INFO)) == 3


def test_keys_are_independent_and_success_without_failure_is_silent(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger=NAME)
    log = FailureLog(logging.getLogger(NAME))
    log.succeeded("a", "a works again")
    log.failed("a", "a fails")
    log.failed("b", "b fails")
    log.succeeded("b")  # no message: cleared silently
    assert records(caplog, logging.INFO) == [
        "a fails (repeats logged at DEBUG until it works again)",
        "b fails (repeats logged at DEBUG until it works again)"]
    assert log.failing() == {"a": 1}


def test_concurrent_failures_log_one_info_line(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger=NAME)
    log = FailureLog(logging.getLogger(NAME))
    barrier = threading.Barrier(8)

    def fail() -> None:
        barrier.wait()
        for _ in range(50):
            log.failed("peer", "peer fails")

    threads = [threading.Thread(target=fail) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(records(caplog, logging.INFO)) == 1
    assert log.failing() == {"peer": 400}
