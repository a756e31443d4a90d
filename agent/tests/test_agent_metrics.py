"""Metrics collected by a running agent from a real PostgreSQL, and what happens without one."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict

import pytest
import requests
from support.federation import Federation, build_federation, wait_for
from support.postgres import EsgfDatabase, esgf_db, pg_server  # noqa: F401
from test_metrics_pg import DOWNLOADS, USERS, expected_downloads, expected_registered_users, fill

pytestmark = pytest.mark.slow


def metrics_of(fed: Federation, hostname: str) -> Dict[str, Any]:
    s = requests.Session()
    s.trust_env = False
    s.verify = fed.pki.ca_cert
    r = s.get(fed.nodes[hostname].url("/esgf-nm/metrics.json"), timeout=5)
    assert r.status_code == 200
    return dict(r.json())


def one_node(root: Path, db: Dict[str, Any]) -> Federation:
    fed = build_federation(root, 1, 0, extra={"metrics": {"enabled": True, "interval_s": 1.0,
                                                          "db": db}})
    # A data node and an identity provider at once: both kinds of numbers.
    (fed.nodes["sn1.test"].dir / "config_type").write_text("20\n")
    return fed


def test_agent_serves_metrics_from_the_node_database(tmp_path: Path,
                                                     esgf_db: EsgfDatabase) -> None:  # noqa: F811
    fill(esgf_db)
    server = esgf_db.server
    fed = one_node(tmp_path, {"host": str(server.socket_dir), "port": server.port,
                              "dbname": esgf_db.dbname, "user": server.reader,
                              "password_file": str(server.reader_password_file)})
    try:
        fed.start("sn1.test")
        wait_for(lambda: metrics_of(fed, "sn1.test").get("available") is True, 20,
                 "metrics to be collected")
        m = metrics_of(fed, "sn1.test")
        expected = expected_downloads(DOWNLOADS)
        assert m["registered_users"] == expected_registered_users(USERS)
        assert m["download"] == {"count": expected.count, "bytes": expected.bytes,
                                 "users": expected.users}
        check = fed.nodes["sn1.test"].admin.get("/v1/check")
        assert {c["name"]: c["ok"] for c in check["checks"]}["database"] is True
    finally:
        fed.stop_all()


def test_database_unreachable_marks_metrics_unavailable_and_agent_runs_on(
        tmp_path: Path, esgf_db: EsgfDatabase) -> None:  # noqa: F811
    server = esgf_db.server
    wrong = tmp_path / "wrong-password"
    wrong.write_text("not-the-password\n")
    wrong.chmod(0o600)
    fed = one_node(tmp_path, {"host": str(server.socket_dir), "port": server.port,
                              "dbname": esgf_db.dbname, "user": server.reader,
                              "password_file": str(wrong)})
    try:
        fed.start("sn1.test")
        wait_for(lambda: "reason" in metrics_of(fed, "sn1.test")
                 and "not collected" not in metrics_of(fed, "sn1.test")["reason"], 20,
                 "the first collection attempt")
        m = metrics_of(fed, "sn1.test")
        assert m["available"] is False
        assert "password" in m["reason"].lower() or "authentication" in m["reason"].lower()
        assert "not-the-password" not in m["reason"]
        check = fed.nodes["sn1.test"].admin.get("/v1/check")
        assert check["ok"] is False
        assert {c["name"]: c["ok"] for c in check["checks"]}["database"] is False
        # Still serving everything else.
        assert fed.status("sn1.test")["hostname"] == "sn1.test"
        log = (fed.nodes["sn1.test"].dir / "agent.log").read_text()
        assert "not-the-password" not in log
    finally:
        fed.stop_all()
