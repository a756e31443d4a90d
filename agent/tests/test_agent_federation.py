"""A federation of real agent processes (3 supernodes, 4 members) on loopback with mTLS.

Bootstrap with a seeded epoch, joins, a supernode SIGKILLed and restarted, a member leaving,
a supernode killed right after acknowledging a join, and every kind of bad input refused
with the state unchanged.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import ssl
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest
import requests
from support.federation import Federation, bootstrap, build_federation, wait_for

from esgf_nodemgr.cli.main import main

pytestmark = pytest.mark.slow
ROUND_S = 1.0


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Federation]:
    root = tmp_path_factory.mktemp("federation")
    f = build_federation(root, 3, 4, round_s=ROUND_S)
    try:
        bootstrap(f)
        yield f
    finally:
        f.stop_all()
        for h, node in f.nodes.items():
            text = node.log.read_text(errors="replace") if node.log and node.log.exists() \
                else ""
            assert "Traceback" not in text, f"{h} logged a traceback:\n{f.log_tail(h, 60)}"


def session(fed: Federation, hostname: str = "", foreign: bool = False) -> requests.Session:
    s = requests.Session()
    s.trust_env = False
    s.verify = fed.pki.ca_cert
    if foreign:
        s.cert = (fed.pki.foreign.cert, fed.pki.foreign.key)
    elif hostname:
        files = fed.pki.node(hostname)
        s.cert = (files.cert, files.key)
    return s


def agreed_state(fed: Federation, hostname: str) -> Dict[str, Any]:
    """The replicated state every supernode must agree on (not reports or timeline)."""
    doc = fed.nodes[hostname].admin.get("/v1/map")
    return {k: doc[k] for k in ("roster", "epoch", "entries", "decision")}


def served_by(fed: Federation, observer: str) -> Dict[str, str]:
    return {m["hostname"]: m["server_hostname"] for m in fed.status(observer)["members"]}


def test_bootstrap_seeds_one_epoch_and_every_member_joins(fed: Federation) -> None:
    sns = fed.supernodes()
    epochs = {fed.status(h)["epoch"] for h in sns}
    assert len(epochs) == 1 and None not in epochs
    wait_for(lambda: all(len(fed.status(h)["members"]) == 4 for h in sns), 15,
             "every supernode to list the four members")
    views = [served_by(fed, h) for h in sns]
    assert all(v == views[0] for v in views), views
    for m in fed.members():
        st = fed.status(m)
        assert st["joined"] and st["state"] == "joined"
        assert st["server_hostname"] == views[0][m]
    ids = [m["id"] for m in fed.status(sns[0])["members"]]
    assert len(set(ids)) == len(ids) == 4
    wait_for(lambda: all(agreed_state(fed, h) == agreed_state(fed, sns[0]) for h in sns), 15,
             "every supernode to hold the same map")


def test_status_tells_whether_every_peer_holds_the_same_map(fed: Federation,
                                                          capsys: Any) -> None:
    # Seen from one supernode: each peer's last probe answer carried this node's own digest.
    sns = fed.supernodes()
    others = sorted(h for h in sns if h != sns[0])

    def all_in_sync() -> bool:
        m = fed.status(sns[0])["map"]
        return sorted(m["peers_in_sync"]) == others and m["peers_differ"] == []

    wait_for(all_in_sync, 15, "sn1 to see every peer holding its map")
    sock = fed.nodes[sns[0]].socket

    def text_says_same() -> bool:
        main(["status", "--socket", sock])
        return f"(same on all {len(others)} peers)" in capsys.readouterr().out

    wait_for(text_says_same, 15, "esgf-nm status to say the map is the same on every peer")


def test_cli_status_members_epoch_and_check(fed: Federation, capsys: Any) -> None:
    sock = fed.nodes["sn1.test"].socket
    assert main(["status", "--socket", sock, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["role"] == "supernode" and doc["hostname"] == "sn1.test"
    assert main(["status", "--socket", sock]) == 0
    text = capsys.readouterr().out
    for h in fed.supernodes() + fed.members():
        assert h in text
    assert main(["members", "--socket", sock, "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 4
    assert main(["epoch", "show", "--socket", sock, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["epoch"] == doc["epoch"]
    assert main(["check", "--socket", sock]) == 0
    assert "ok   roster" in capsys.readouterr().out
    # Re-seeding without --force changes nothing.
    assert main(["epoch", "seed", "--socket", sock, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["status"] == "unchanged"
    member_sock = fed.nodes["m1.test"].socket
    assert main(["join", "--socket", member_sock, "--project", "CMIP6", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["answer"]["status"] == "unchanged"
    # The live map, as tables and as a file in the prototype's format.
    assert main(["map", "show", "--socket", sock]) == 0
    assert "sn3.test" in capsys.readouterr().out
    assert main(["map", "get", "--socket", sock, "--legacy"]) == 0
    assert json.loads(capsys.readouterr().out)["total_supernodes"] == 3
    # An agent that is not there: exit code 3 and a message that says so.
    assert main(["status", "--socket", str(fed.root / "nowhere.sock")]) == 3
    assert "is the agent running" in capsys.readouterr().err


def test_public_endpoints_need_no_client_certificate(fed: Federation) -> None:
    s = session(fed)
    node = fed.nodes["sn1.test"]
    st = s.get(node.url("/esgf-nm/v1/status"), timeout=5)
    assert st.status_code == 200 and st.json()["hostname"] == "sn1.test"
    props = s.get(node.url("/esgf-nm/node-props.json"), timeout=5).json()
    assert props["properties"]["hostname"] == "sn1.test"
    flat = s.get(node.url("/esgf-nm/health-check-api"), timeout=5).json()
    assert flat["status"] == "GOOD" and flat["esg.org.name"] == "Test Org"
    metrics = s.get(node.url("/esgf-nm/metrics.json"), timeout=5).json()
    assert metrics["available"] is False and "disabled" in metrics["reason"]
    # Node-to-node endpoints do need one.
    assert s.get(node.url("/esgf-nm/v1/probe?from=x"), timeout=5).status_code == 401


def test_registration_xml_lists_every_node_and_validates(fed: Federation) -> None:
    xmlschema = pytest.importorskip("xmlschema")
    shared = Path(os.environ.get("ESGF_NM_SHARED_DIR",
                                 Path(__file__).resolve().parents[2].parent / "shared"))
    xsd = shared / "esgf" / "registration.xsd"
    s = session(fed)
    url = fed.nodes["sn2.test"].url("/esgf-nm/registration.xml")
    everyone = set(fed.nodes)

    def complete() -> bool:
        r = s.get(url, timeout=5)
        return r.status_code == 200 and all(f'hostname="{h}"' in r.text for h in everyone)

    wait_for(complete, 30, "registration.xml to list every node")
    data = s.get(url, timeout=5).content
    assert data.count(b"<Node ") == len(everyone) or data.count(b":Node ") == len(everyone)
    on_disk = (fed.nodes["sn2.test"].dir / "registration.xml").read_bytes()
    assert on_disk.count(b"hostname=") >= len(everyone)
    if not xsd.is_file():
        pytest.skip(f"ESGF schema not found at {xsd}")
    # The published schema has one defect (PEMCert's Cert outside a sequence): repair it in
    # a temporary copy, then validate strictly.
    text = xsd.read_text().replace('<xsd:element name="Cert" type="xsd:string"/>',
                                   '<xsd:sequence><xsd:element name="Cert" '
                                   'type="xsd:string"/></xsd:sequence>')
    repaired = fed.root / "registration.xsd"
    repaired.write_text(text)
    xmlschema.XMLSchema(str(repaired)).validate(data.decode())
    # Members fetch it from their supernode.
    wait_for(lambda: (fed.nodes["m1.test"].dir / "registration.xml").exists(), 15,
             "member m1 to fetch registration.xml")


def test_bad_input_is_refused_and_changes_nothing(fed: Federation) -> None:
    node = fed.nodes["sn1.test"]
    url = node.url("/esgf-nm/v1/message")
    before = agreed_state(fed, "sn1.test")
    as_sn2 = session(fed, "sn2.test")
    as_m1 = session(fed, "m1.test")
    headers = {"Content-Type": "application/json"}

    r = as_sn2.post(url, data=b'{"sender": "sn2.test", "message": {', headers=headers,
                    timeout=5)
    assert r.status_code == 400 and "malformed JSON" in r.json()["error"]
    # Oversized: announce 2 MiB and read the answer before sending it (the server refuses
    # from the headers alone, without reading the body).
    ctx = ssl.create_default_context(cafile=fed.pki.ca_cert)
    files = fed.pki.node("sn2.test")
    ctx.load_cert_chain(files.cert, files.key)
    conn = http.client.HTTPSConnection("127.0.0.1", node.port, context=ctx, timeout=5)
    conn.putrequest("POST", "/esgf-nm/v1/message")
    conn.putheader("Content-Type", "application/json")
    conn.putheader("Content-Length", str(2 << 20))
    conn.endheaders()
    big = conn.getresponse()
    assert big.status == 413
    conn.close()
    r = as_sn2.post(url, json={"sender": "sn2.test", "message": {"kind": "nonsense"}},
                    timeout=5)
    assert r.status_code == 400 and "unknown message kind" in r.json()["error"]
    r = session(fed).post(url, json={"sender": "sn2.test", "message": {"kind": "leave"}},
                          timeout=5)
    assert r.status_code == 401
    with pytest.raises((requests.exceptions.SSLError, requests.exceptions.ConnectionError,
                        ssl.SSLError)):
        session(fed, foreign=True).post(url, json={"sender": "sn2.test",
                                                   "message": {"kind": "leave"}}, timeout=5)
    # A member's certificate claiming to be a supernode: spoofing, refused.
    decision = before["decision"]
    r = as_m1.post(url, json={"sender": "sn2.test",
                              "message": {"kind": "push", "sections": {"decision": decision}}},
                   timeout=5)
    assert r.status_code == 403 and "does not match" in r.json()["error"]
    # A member pushing map sections under its own name: not a supernode, refused.
    r = as_m1.post(url, json={"sender": "m1.test",
                              "message": {"kind": "push", "sections": {"decision": decision}}},
                   timeout=5)
    assert r.status_code == 403 and "not a supernode" in r.json()["detail"]
    # A stale decision replayed by a real supernode: ignored.
    stale = dict(decision, round=0, leader="1", summary="old news")
    r = as_sn2.post(url, json={"sender": "sn2.test",
                               "message": {"kind": "push", "sections": {"decision": stale}}},
                    timeout=5)
    assert r.status_code == 409 and r.json()["status"] == "ignored"
    # A malformed section inside a well-formed message.
    r = as_sn2.post(url, json={"sender": "sn2.test", "message": {
        "kind": "push", "sections": {"entry/1": {"supernode": "1", "version": "x",
                                                 "members": []}}}}, timeout=5)
    assert r.status_code == 400 and "version" in r.json()["error"]
    assert agreed_state(fed, "sn1.test") == before


def test_sigkilled_supernode_members_adopted_then_returned(fed: Federation) -> None:
    sns = fed.supernodes()
    victim = "sn2.test"
    survivors = [h for h in sns if h != victim]
    wait_for(lambda: all(agreed_state(fed, h) == agreed_state(fed, sns[0]) for h in sns), 20,
             "agreement before the crash")
    before = served_by(fed, survivors[0])
    pid = fed.nodes[victim].pid
    fed.kill(victim, signal.SIGKILL)
    started = time.monotonic()

    def adopted() -> bool:
        for h in survivors:
            st = fed.status(h)
            health = {s["hostname"]: s["health"] for s in st["supernodes"]}
            if health[victim] != "unreachable":
                return False
            if any(m["server_hostname"] in (victim, None) for m in st["members"]):
                return False
        return True

    wait_for(adopted, 15 * ROUND_S, "the survivors to declare the victim down and adopt")
    detection = time.monotonic() - started
    moved = [m for m, s in before.items() if s == victim]
    after = served_by(fed, survivors[0])
    for m in moved:
        assert after[m] in survivors
        wait_for(lambda m=m: fed.status(m)["server_hostname"] == after[m], 10,
                 f"member {m} to follow its new server")
    fed.start(victim)
    assert fed.nodes[victim].pid != pid

    def returned() -> bool:
        for h in sns:
            st = fed.status(h)
            if any(s["health"] != "good" for s in st["supernodes"]):
                return False
            if served_by(fed, h) != before:
                return False
        return True

    wait_for(returned, 20, "members to return to the restarted supernode")
    for m in moved:
        wait_for(lambda m=m: fed.status(m)["server_hostname"] == victim, 10,
                 f"member {m} to follow its returning server")
    assert detection < 15 * ROUND_S
    # The logs tell the outage once, not once per attempt, and stay quiet about what is not
    # a problem (a duplicate push answered "ignored"; members keep nobody's properties).
    for h in fed.supernodes() + fed.members():
        log = fed.nodes[h].log
        assert log is not None
        lines = [ln for ln in log.read_text(errors="replace").splitlines() if " INFO " in ln]
        assert not [ln for ln in lines if "nothing newer" in ln], h
        undelivered = [ln for ln in lines if f"messages to {victim} not delivered" in ln]
        assert len(undelivered) <= 1, (h, undelivered)
        if h in fed.members():
            assert not [ln for ln in lines if "relayed properties" in ln], h


def test_member_leaves_everywhere(fed: Federation, capsys: Any) -> None:
    leaving = "m4.test"
    assert main(["leave", "--socket", fed.nodes[leaving].socket, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["status"]["state"] == "left"
    wait_for(lambda: all(leaving not in served_by(fed, h) for h in fed.supernodes()), 15,
             "every supernode to drop the member that left")
    assert fed.status(leaving)["joined"] is False
    # Leaving twice is a no-op.
    assert main(["leave", "--socket", fed.nodes[leaving].socket]) == 0


def test_kill_right_after_an_acknowledged_join_loses_nothing(fed: Federation) -> None:
    """SIGKILL the accepting supernode as soon as the member has its answer."""
    joiner = "m4.test"
    if fed.status(joiner)["joined"]:
        fed.nodes[joiner].admin.post("/v1/leave", {})
        wait_for(lambda: not fed.status(joiner)["joined"], 10, "m4 to leave first")
    fed.nodes[joiner].admin.post("/v1/join", {"project": "CMIP5", "standby": True})
    wait_for(lambda: fed.status(joiner)["state"] == "joined", 15, "m4's join to be accepted")
    home = fed.status(joiner)["home"]
    home_host = next(s["hostname"] for s in fed.status(joiner)["roster"]["supernodes"]
                     if s["id"] == home)
    fed.kill(home_host, signal.SIGKILL)
    fed.start(home_host)
    member_id = fed.status(joiner)["member_id"]

    def everywhere() -> bool:
        for h in fed.supernodes():
            rows = {m["hostname"]: m for m in fed.status(h)["members"]}
            m = rows.get(joiner)
            if m is None or m["id"] != member_id or m["project"] != "CMIP5":
                return False
        return True

    wait_for(everywhere, 20, "the acknowledged join to reach every supernode")
    sns = fed.supernodes()
    wait_for(lambda: all(agreed_state(fed, h) == agreed_state(fed, sns[0]) for h in sns), 20,
             "the federation to converge after the restart")


def test_legacy_api_paths_answer(fed: Federation) -> None:
    node = fed.nodes["sn1.test"]
    s = session(fed, "sn2.test")
    legacy = s.get(node.url("/esgf-nm/api?action=sync_node_map_file"), timeout=5)
    assert legacy.status_code == 200
    doc = legacy.json()
    assert doc["total_supernodes"] == 3
    assert len(doc["links"]) == 3
    r = s.get(node.url("/esgf-nm/api?action=frobnicate"), timeout=5)
    assert r.status_code == 400 and "unknown action" in r.json()["error"]
    on_disk = json.loads((node.dir / "esgf_nodemgr_map.json").read_text())
    assert {x["hostname"] for x in on_disk["supernodes"]} == set(fed.supernodes())


def test_config_check_names_bad_keys(tmp_path: Path, capsys: Any) -> None:
    bad = tmp_path / "agent.yml"
    bad.write_text("node:\n  hostname: a\n  role: boss\n  port: 99999\nfederation:\n"
                   "  round_s: -1\n  colour: blue\ntls: {cert: rel/path}\n")
    assert main(["config", "check", str(bad), "--json"]) == 1
    problems: List[str] = json.loads(capsys.readouterr().out)["problems"]
    text = "\n".join(problems)
    for key in ("node.role", "node.port", "federation.round_s", "federation.colour",
                "tls.cert", "tls.key", "tls.ca"):
        assert key in text, (key, text)
