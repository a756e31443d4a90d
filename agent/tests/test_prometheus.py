"""``GET /metrics``: the Prometheus text format, read back by the reference parser
(``prometheus_client.parser``) and checked against the federation's own status document.

The writer is tested on its own first (escaping, special values, histograms); then a real
federation (3 supernodes, 3 members, mTLS on loopback) is scraped without a client
certificate, and a single agent configured with ``http.metrics_auth: node`` and an
unreachable database shows the other side.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

import pytest
import requests
from support.federation import Federation, bootstrap, build_federation, wait_for

from esgf_nodemgr.runtime import prom

parser = pytest.importorskip("prometheus_client.parser",
                             reason="prometheus-client is not installed (requirements-dev.txt)")

ROUND_S = 1.0
Families = Dict[str, Any]


def parse(text: str) -> Families:
    """Families by name (counters under their name without ``_total``, as the parser does)."""
    fams: Families = {}
    for fam in parser.text_string_to_metric_families(text):
        assert fam.name not in fams, f"family {fam.name} appears twice"
        fams[fam.name] = fam
    return fams


def samples(fams: Families, family: str, sample: Optional[str] = None
            ) -> List[Tuple[Dict[str, str], float]]:
    fam = fams[family]
    name = sample or family
    return [(dict(s.labels), s.value) for s in fam.samples if s.name == name]


def value(fams: Families, family: str, sample: Optional[str] = None, **labels: str) -> float:
    found = [v for lab, v in samples(fams, family, sample) if lab == labels]
    assert len(found) == 1, (family, labels, samples(fams, family, sample))
    return found[0]


# -- the writer on its own ---------------------------------------------------------------------
def test_writer_escapes_and_round_trips_through_the_reference_parser() -> None:
    ex = prom.Exposition()
    tricky = 'a "quoted" back\\slash\nnew line'
    ex.add("t_gauge", "gauge", "Help with a back\\slash\nand a new line.", 1.5,
           {"name": tricky})
    ex.add("t_gauge", "gauge", "", math.inf, {"name": "inf"})
    ex.add("t_gauge", "gauge", "", -math.inf, {"name": "-inf"})
    ex.add("t_gauge", "gauge", "", math.nan, {"name": "nan"})
    ex.add("t_gauge", "gauge", "", 1e-7, {"name": "tiny"})
    ex.add("t_gauge", "gauge", "", 12345678901234567890, {"name": "big"})
    ex.add("t_events_total", "counter", "Events.", 3)
    ex.declare("t_empty", "gauge", "Declared, no samples.")
    h = prom.Histogram((0.1, 1.0))
    for v in (0.05, 0.5, 0.5, 7.0):
        h.observe(v)
    ex.histogram("t_seconds", "A histogram.", h, {"peer": "x"})
    text = ex.text()
    assert text.endswith("\n") and "\n\n" not in text
    assert '\\"quoted\\"' in text and "back\\\\slash\\nnew" in text
    fams = parse(text)
    assert fams["t_gauge"].documentation == "Help with a back\\slash\nand a new line."
    assert value(fams, "t_gauge", name=tricky) == 1.5
    assert value(fams, "t_gauge", name="inf") == math.inf
    assert value(fams, "t_gauge", name="-inf") == -math.inf
    assert math.isnan(value(fams, "t_gauge", name="nan"))
    assert value(fams, "t_gauge", name="tiny") == 1e-7
    assert value(fams, "t_gauge", name="big") == 12345678901234567890
    assert fams["t_events"].type == "counter"
    assert value(fams, "t_events", "t_events_total") == 3
    assert fams["t_empty"].samples == []
    buckets = {lab["le"]: v for lab, v in samples(fams, "t_seconds", "t_seconds_bucket")}
    assert buckets == {"0.1": 1, "1.0": 3, "+Inf": 4}
    assert value(fams, "t_seconds", "t_seconds_count", peer="x") == 4
    assert value(fams, "t_seconds", "t_seconds_sum", peer="x") == pytest.approx(8.05)


@pytest.mark.parametrize("call", [
    lambda ex: ex.add("bad-name", "gauge", "", 1),
    lambda ex: ex.add("c_events", "counter", "", 1),
    lambda ex: ex.add("g", "gauge", "", 1, {"__reserved": "x"}),
    lambda ex: ex.add("g", "gauge", "", 1, {"bad-label": "x"}),
    lambda ex: ex.add("g", "summary", "", 1),
    lambda ex: (ex.add("g", "gauge", "", 1), ex.add("g", "counter", "", 1)),
])
def test_writer_refuses_what_the_format_forbids(call: Any) -> None:
    with pytest.raises(ValueError):
        call(prom.Exposition())


def test_histogram_buckets_must_increase() -> None:
    with pytest.raises(ValueError):
        prom.Histogram((1.0, 0.5))


def test_telemetry_counts_rounds_once_and_bounds_kinds() -> None:
    t = prom.Telemetry()
    for r in (None, -1, 3, 3, 4, 4, 2, 7):
        t.note_round(r)
    assert t.snapshot().rounds == 3
    for i in range(prom.MAX_KINDS + 10):
        t.error(f"kind{i}")
    errors = t.snapshot().errors
    assert len(errors) == prom.MAX_KINDS + 1 and errors["other"] == 10


# -- a real federation ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Federation]:
    f = build_federation(tmp_path_factory.mktemp("prometheus"), 3, 3, round_s=ROUND_S)
    try:
        bootstrap(f)
        yield f
    finally:
        f.stop_all()


def session(fed: Federation, cert_of: str = "") -> requests.Session:
    s = requests.Session()
    s.trust_env = False
    s.verify = fed.pki.ca_cert
    if cert_of:
        files = fed.pki.node(cert_of)
        s.cert = (files.cert, files.key)
    return s


def scrape(fed: Federation, hostname: str) -> Families:
    r = session(fed).get(fed.nodes[hostname].url("/metrics"), timeout=5)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    return parse(r.text)


def public_status(fed: Federation, hostname: str) -> Dict[str, Any]:
    return dict(session(fed).get(fed.nodes[hostname].url("/esgf-nm/v1/status"),
                                 timeout=5).json())


def test_gauges_match_the_status_document(fed: Federation) -> None:
    sns = fed.supernodes()
    wait_for(lambda: all(len(fed.status(h)["members"]) == 3 for h in sns), 15,
             "every supernode to list the members")

    def consistent() -> bool:
        # Status and scrape are two reads: retry until nothing changed in between.
        before = public_status(fed, "sn1.test")
        fams = scrape(fed, "sn1.test")
        after = public_status(fed, "sn1.test")
        if before["map"]["digest"] != after["map"]["digest"]:
            return False
        check_against_status(fams, after)
        return True

    wait_for(consistent, 15, "a scrape between two identical status documents")


def check_against_status(fams: Families, st: Dict[str, Any]) -> None:
    for fam in fams.values():
        assert fam.documentation, f"{fam.name} has no HELP text"
        assert fam.type in ("counter", "gauge", "histogram"), (fam.name, fam.type)
        assert fam.name.startswith(("esgf_nm_", "process_")), fam.name
    health: Dict[str, int] = {}
    for s in st["supernodes"]:
        health[s["health"]] = health.get(s["health"], 0) + 1
    by_health = {lab["health"]: v for lab, v in samples(fams, "esgf_nm_supernodes")}
    assert sum(by_health.values()) == len(st["supernodes"]) == 3
    for h, n in by_health.items():
        assert n == health.get(h, 0), (h, by_health, health)
    up = sum(v for _lab, v in samples(fams, "esgf_nm_supernode_up"))
    assert up == sum(1 for s in st["supernodes"] if s["health"] not in ("bad", "unreachable"))
    for s in st["supernodes"]:
        assert value(fams, "esgf_nm_members", supernode=s["hostname"], kind="own") == \
            s["members"]
        assert value(fams, "esgf_nm_members", supernode=s["hostname"], kind="adopted") == \
            s["adopted"]
    total = sum(v for _lab, v in samples(fams, "esgf_nm_members"))
    assert total == len(st["members"]) == 3
    links = samples(fams, "esgf_nm_link_up")
    assert len(links) == len(st["links"]) == 3
    assert sum(v for _lab, v in links) == sum(1 for x in st["links"] if x["status"] == "up")
    assert value(fams, "esgf_nm_links", status="up") == sum(
        1 for x in st["links"] if x["status"] == "up")
    assert value(fams, "esgf_nm_roster_version") == st["map"]["roster_version"]
    assert value(fams, "esgf_nm_decision_round") == st["map"]["decision"][0]
    assert value(fams, "esgf_nm_epoch_seconds") == pytest.approx(st["epoch"])
    assert value(fams, "esgf_nm_map_info", digest=st["map"]["digest"][:16]) == 1
    assert value(fams, "esgf_nm_members_unserved") == 0
    assert value(fams, "esgf_nm_agent_info", hostname="sn1.test", role="supernode",
                 version=st["version"]) == 1
    assert value(fams, "esgf_nm_database_metrics_enabled") == 0
    assert samples(fams, "esgf_nm_database_up") == []
    assert value(fams, "esgf_nm_properties_status", status="GOOD") == 1
    assert value(fams, "process_resident_memory_bytes") > 1 << 20
    assert value(fams, "process_open_fds") > 0


def test_counters_increase_between_two_scrapes(fed: Federation) -> None:
    first = scrape(fed, "sn2.test")
    time.sleep(3 * ROUND_S)
    second = scrape(fed, "sn2.test")

    def total(fams: Families, family: str) -> float:
        return sum(v for _lab, v in samples(fams, family, family + "_total"))

    for family in ("esgf_nm_rounds", "esgf_nm_probes", "esgf_nm_messages_sent",
                   "esgf_nm_messages_received", "esgf_nm_bytes_sent", "esgf_nm_bytes_received",
                   "esgf_nm_http_requests", "process_cpu_seconds"):
        assert fams_type(second, family) == "counter", family
        assert total(second, family) > total(first, family), family
    # Every round, observations go to the leader: both directions are counted by kind.
    kinds = {lab["kind"] for lab, _v in samples(second, "esgf_nm_messages_sent",
                                                "esgf_nm_messages_sent_total")}
    assert "observations" in kinds, kinds
    assert total(second, "esgf_nm_rounds") - total(first, "esgf_nm_rounds") >= 2
    # Counters never go down.
    for family in ("esgf_nm_errors", "esgf_nm_decisions"):
        assert total(second, family) >= total(first, family)


def fams_type(fams: Families, family: str) -> str:
    return str(fams[family].type)


def test_probe_histograms_are_cumulative_and_consistent(fed: Federation) -> None:
    fams = scrape(fed, "sn1.test")
    hist = fams["esgf_nm_probe_duration_seconds"]
    assert hist.type == "histogram"
    peers = {lab["peer"] for lab, _v in samples(fams, "esgf_nm_probe_duration_seconds",
                                                "esgf_nm_probe_duration_seconds_count")}
    assert {"sn2.test", "sn3.test"} <= peers, peers
    observed = 0.0
    for peer in peers:
        buckets = sorted(((float(lab["le"]), v) for lab, v in samples(
            fams, "esgf_nm_probe_duration_seconds", "esgf_nm_probe_duration_seconds_bucket")
            if lab["peer"] == peer), key=lambda b: b[0])
        counts = [v for _le, v in buckets]
        assert counts == sorted(counts), (peer, buckets)
        assert buckets[-1][0] == math.inf
        count = value(fams, "esgf_nm_probe_duration_seconds",
                      "esgf_nm_probe_duration_seconds_count", peer=peer)
        total = value(fams, "esgf_nm_probe_duration_seconds",
                      "esgf_nm_probe_duration_seconds_sum", peer=peer)
        assert buckets[-1][1] == count > 0
        # Loopback: every probe answered well within the probe timeout.
        assert 0 < total < count * 0.45 * ROUND_S, (peer, total, count)
        observed += count
    failed = sum(v for _lab, v in samples(fams, "esgf_nm_probe_failures",
                                          "esgf_nm_probe_failures_total"))
    sent = value(fams, "esgf_nm_probes", "esgf_nm_probes_total")
    # Probes still in flight at the scrape are counted as sent but not yet observed.
    assert observed + failed <= sent <= observed + failed + 2 * len(peers), \
        (observed, failed, sent)


def test_member_metrics_show_its_own_view(fed: Federation) -> None:
    st = public_status(fed, "m1.test")
    fams = scrape(fed, "m1.test")
    assert value(fams, "esgf_nm_member_joined") == 1
    assert value(fams, "esgf_nm_member_served") == 1
    home = next(s["hostname"] for s in st["roster"]["supernodes"] if s["id"] == st["home"])
    assert value(fams, "esgf_nm_member_server_info", server=st["server_hostname"],
                 home=home) == 1
    assert value(fams, "esgf_nm_roster_version") == st["roster_version"]
    assert value(fams, "esgf_nm_agent_info", hostname="m1.test", role="member",
                 version=st["version"]) == 1
    assert "esgf_nm_supernodes" not in fams  # members do not hold the map


def test_bad_requests_count_as_errors(fed: Federation) -> None:
    def bad_requests() -> float:
        return value(scrape(fed, "sn3.test"), "esgf_nm_errors", "esgf_nm_errors_total",
                     kind="bad_request") if "bad_request" in {
            lab["kind"] for lab, _v in samples(scrape(fed, "sn3.test"), "esgf_nm_errors",
                                               "esgf_nm_errors_total")} else 0.0

    before = bad_requests()
    r = session(fed, "sn2.test").post(fed.nodes["sn3.test"].url("/esgf-nm/v1/message"),
                                      json={"sender": "sn2.test",
                                            "message": {"kind": "nonsense"}}, timeout=5)
    assert r.status_code == 400
    assert bad_requests() == before + 1


# -- one agent: client certificate required, database unreachable ----------------------------
def test_metrics_auth_node_and_database_down(tmp_path: Path) -> None:
    f = build_federation(tmp_path, 1, 0, round_s=ROUND_S, extra={
        "http": {"metrics_auth": "node"},
        "metrics": {"enabled": True, "interval_s": 1.0,
                    "db": {"host": str(tmp_path / "no-postgres-here"), "port": 5432}}})
    try:
        f.start("sn1.test")
        url = f.nodes["sn1.test"].url("/metrics")
        r = session(f).get(url, timeout=5)
        assert r.status_code == 401 and "client certificate" in r.json()["error"]
        # Status page and status stay public whatever the metrics setting.
        assert session(f).get(f.nodes["sn1.test"].url("/esgf-nm/"), timeout=5).ok

        def db_reported_down() -> bool:
            fams = parse(session(f, "sn1.test").get(url, timeout=5).text)
            return bool(value(fams, "esgf_nm_database_metrics_enabled") == 1 and
                        samples(fams, "esgf_nm_database_up") == [({}, 0.0)])

        wait_for(db_reported_down, 15, "esgf_nm_database_up 0 for an unreachable database")
    finally:
        f.stop_all()
