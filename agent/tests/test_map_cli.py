"""``esgf-nm map …`` through ``cli.main.main`` (and once through ``python -m esgf_nodemgr``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, Tuple

import pytest

from esgf_nodemgr.cli.main import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, main
from esgf_nodemgr.cli.map_cmd import parse_host
from esgf_nodemgr.core import legacy, view
from esgf_nodemgr.core import nodemap as nm
from esgf_nodemgr.core.roster import SupernodeSpec

HERE = Path(__file__).resolve().parent
LEGACY = HERE / "fixtures" / "legacy"
MAPS = HERE / "fixtures" / "maps"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> Tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def read(path: Path) -> Any:
    return json.loads(path.read_text())


def ids_by_host(m: nm.NodeMap) -> Dict[str, str]:
    return {s.hostname: s.id for s in m.roster.supernodes}


# --------------------------------------------------------------------------------------------
# HOST syntax
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("arg", "spec"), [
    ("a.org", SupernodeSpec("a.org")),
    ("a.org:8443", SupernodeSpec("a.org", None, 8443)),
    ("a.org=10.0.0.1", SupernodeSpec("a.org", "10.0.0.1")),
    ("a.org=10.0.0.1:9000", SupernodeSpec("a.org", "10.0.0.1", 9000)),
    ("a.org=[2001:db8::1]:9000", SupernodeSpec("a.org", "2001:db8::1", 9000)),
    ("a.org=[2001:db8::1]", SupernodeSpec("a.org", "2001:db8::1")),
])
def test_parse_host(arg: str, spec: SupernodeSpec) -> None:
    assert parse_host(arg) == spec


@pytest.mark.parametrize(("arg", "message"), [
    ("a.org:0", "port must be a number from 1 to 65535"),
    ("a.org:http", "port must be a number"),
    ("a.org=2001:db8::1", "write an IPv6 address in brackets"),
    ("=10.0.0.1", "not a valid hostname"),
    ("a.org=", "not a valid address"),
    ("a b", "not a valid hostname"),
])
def test_bad_host_is_a_usage_error(capsys: pytest.CaptureFixture[str], arg: str,
                                   message: str) -> None:
    code, out, err = run(capsys, "map", "generate", "x.org", arg)
    assert code == EXIT_USAGE and out == ""
    assert message in err


# --------------------------------------------------------------------------------------------
# generate
# --------------------------------------------------------------------------------------------
def test_generate_to_stdout_and_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, err = run(capsys, "map", "generate", "a.org", "b.org:8443", "c.org=10.0.0.3")
    assert code == EXIT_OK and err == ""
    m = nm.map_from_json(json.loads(out))
    assert ids_by_host(m) == {"a.org": "1", "b.org": "2", "c.org": "3"}
    assert m.roster.by_id("2").port == 8443  # type: ignore[union-attr]
    assert m.roster.by_id("3").address == "10.0.0.3"  # type: ignore[union-attr]
    target = tmp_path / "map.json"
    assert run(capsys, "map", "generate", "a.org", "b.org", "--capacity", "5", "-o",
               str(target)) == (EXIT_OK, "", "")
    assert nm.map_from_json(read(target)).roster.capacity == 5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["map.json"]  # no temporary left
    assert oct(target.stat().st_mode & 0o777) == oct(0o644)


def test_generate_keeps_ids_when_the_list_is_reordered(capsys: pytest.CaptureFixture[str],
                                                       tmp_path: Path) -> None:
    first = tmp_path / "first.json"
    run(capsys, "map", "generate", "a.org", "b.org", "c.org", "-o", str(first))
    second = tmp_path / "second.json"
    code, _, _ = run(capsys, "map", "generate", "c.org", "a.org", "b.org", "--existing",
                     str(first), "-o", str(second))
    assert code == EXIT_OK
    m = nm.map_from_json(read(second))
    assert m.roster.ids == ("3", "1", "2")
    assert ids_by_host(m) == ids_by_host(nm.map_from_json(read(first)))


def test_generate_on_a_legacy_map_with_gaps(capsys: pytest.CaptureFixture[str],
                                            tmp_path: Path) -> None:
    # gaps.json: supernodes 1, 2, 5, 11; members up to id 17.
    out_path = tmp_path / "out.json"
    hosts = ["esgf.nci.example", "esgf-node.llnl.example", "esgf-data.dkrz.example",
             "new.example.org"]
    code, _, err = run(capsys, "map", "generate", *hosts, "--existing",
                       str(LEGACY / "gaps.json"), "-o", str(out_path))
    assert code == EXIT_OK, err
    m = nm.map_from_json(read(out_path))
    assert ids_by_host(m) == {"esgf.nci.example": "11", "esgf-node.llnl.example": "1",
                              "esgf-data.dkrz.example": "2", "new.example.org": "18"}
    # Supernode 5 (esgf-node.ipsl.example) left: its id is retired, its member moved.
    assert [(x.id, x.hostname) for x in m.roster.retired] == [("5", "esgf-node.ipsl.example")]
    assert sorted(h for h in view.member_claims(m)) == [
        "aims3.llnl.example", "esgf-cnr.cmcc.example", "esgf1.dkrz.example",
        "vesg.ipsl.example"]
    assert all(home != "5" for home, _ in view.member_claims(m).values())

    # Ids of removed hosts are never reused, not even after another removal and addition.
    third = tmp_path / "third.json"
    code, _, err = run(capsys, "map", "generate", "esgf.nci.example", "other.example.org",
                       "--existing", str(out_path), "-o", str(third))
    assert code == EXIT_OK, err
    m3 = nm.map_from_json(read(third))
    assert ids_by_host(m3) == {"esgf.nci.example": "11", "other.example.org": "19"}
    assert {x.id for x in m3.roster.retired} == {"1", "2", "5", "18"}
    assert len(view.member_claims(m3)) == 4  # members never dropped
    # A host that comes back gets its old id.
    back = tmp_path / "back.json"
    run(capsys, "map", "generate", "esgf-node.ipsl.example", "--existing", str(third), "-o",
        str(back))
    assert ids_by_host(nm.map_from_json(read(back))) == {"esgf-node.ipsl.example": "5"}


def test_generate_legacy_output(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "map", "generate", "a.org", "b.org", "c.org", "--legacy")
    assert code == EXIT_OK
    doc = json.loads(out)
    assert doc["total_supernodes"] == 3 and len(doc["links"]) == 3
    assert isinstance(doc["create_timestamp"], float)
    assert legacy.detect_format(doc) == "legacy"


def test_generate_rejects_a_host_listed_twice(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "map", "generate", "a.org", "b.org", "a.org")
    assert (code, out) == (EXIT_USAGE, "")
    assert "'a.org' is listed twice" in err


# --------------------------------------------------------------------------------------------
# add-supernode
# --------------------------------------------------------------------------------------------
def test_add_supernode_on_a_legacy_map(capsys: pytest.CaptureFixture[str],
                                       tmp_path: Path) -> None:
    source = LEGACY / "gaps.json"
    before = source.read_bytes()
    code, out, err = run(capsys, "map", "add-supernode", str(source), "new.example.org")
    assert code == EXIT_OK, err
    m = nm.map_from_json(json.loads(out))  # our format by default
    assert m.roster.ids == ("1", "2", "5", "11", "18")  # "11" kept, new id above member 17
    assert len(view.member_claims(m)) == 4
    assert source.read_bytes() == before

    target = tmp_path / "esgf_nodemgr_map.json"
    code, out, err = run(capsys, "map", "add-supernode", str(source), "new.example.org",
                         "--legacy", "-o", str(target))
    assert (code, out) == (EXIT_OK, "")
    doc = read(target)
    assert [s["id"] for s in doc["supernodes"]] == ["1", "2", "5", "11", "18"]
    assert len(doc["links"]) == 10 and doc["total_membernodes"] == 4
    copies = [x for e in doc["membernodes"] for x in e["members"] if x.get("temp_assign")]
    assert [(c["hostname"], c["prev_owner"]) for c in copies] == [("vesg.ipsl.example", "5")]


def test_add_supernode_on_our_map(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, _ = run(capsys, "map", "add-supernode", str(MAPS / "federation.json"),
                       "sn-f.example.org:9443")
    assert code == EXIT_OK
    m = nm.map_from_json(json.loads(out))
    # Retired id 4 is not reused: the new supernode gets 6.
    assert m.roster.by_hostname("sn-f.example.org") == nm.Supernode(
        "6", "sn-f.example.org", "sn-f.example.org", 9443)
    assert m.roster.version == 3


def test_add_supernode_already_there(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "map", "add-supernode", str(LEGACY / "gaps.json"),
                       "esgf.nci.example")
    assert code == EXIT_USAGE
    assert "'esgf.nci.example' is already supernode 11" in err


# --------------------------------------------------------------------------------------------
# check
# --------------------------------------------------------------------------------------------
def test_check_valid_maps(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "map", "check", str(MAPS / "federation.json"))
    assert (code, err) == (EXIT_OK, "")
    assert out == "valid esgf-nodemgr map: 4 supernodes, 6 members, 6 links, roster v2\n"
    code, out, _ = run(capsys, "map", "check", str(LEGACY / "gaps.json"))
    assert code == EXIT_OK
    assert out == "valid prototype map: 4 supernodes, 4 members, 6 links, roster v1\n"


def test_check_prints_legacy_warnings(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "map", "check", str(LEGACY / "quirks.json"))
    assert code == EXIT_OK
    lines = out.splitlines()
    assert lines[0].startswith("valid prototype map: 4 supernodes, 2 members")
    assert "warning: $.total_membernodes: says 3 but the lists hold 2 members" in lines


def test_check_names_every_problem(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    doc = read(LEGACY / "gaps.json")
    doc["supernodes"][1]["health"] = "dead"
    doc["links"][0]["to"] = "42"
    doc["membernodes"][1]["members"][0]["id"] = "12"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    code, out, err = run(capsys, "map", "check", str(bad))
    assert (code, out) == (EXIT_FAILURE, "")
    lines = err.splitlines()
    assert lines[0] == f"esgf-nm: {bad}: invalid node map (3 problems):"
    assert [x.strip().split(":")[0] for x in lines[1:]] == [
        "$.supernodes[1].health", "$.membernodes[1].members[0].id", "$.links[0].to"]


def test_check_our_format_problems(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    doc = read(MAPS / "federation.json")
    doc["roster"]["next_id"] = 2
    doc["entries"]["1"]["members"][0]["port"] = "x"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    code, _, err = run(capsys, "map", "check", str(bad))
    assert code == EXIT_FAILURE
    assert "  $.entries['1'].members[0].port: expected an integer, got 'x'" in err
    assert "  $.roster.next_id: must be above every numeric id in use" in err


@pytest.mark.parametrize(("content", "code", "message"), [
    ("{", EXIT_FAILURE, "not a map: not valid JSON: Expecting property name"),
    ('{"a": 1, "a": 2}', EXIT_FAILURE, "key 'a' appears twice in one object"),
    ('{"supernodes": [], "x": NaN}', EXIT_FAILURE, "NaN is not valid JSON"),
    (b"\xff\xfe{}", EXIT_FAILURE, "not UTF-8"),
    ("[1, 2]", EXIT_FAILURE, "$: not a node map: expected an object"),
    ('{"hello": "world"}', EXIT_FAILURE, "$: not a node map"),
])
def test_check_bad_content(capsys: pytest.CaptureFixture[str], tmp_path: Path, content: Any,
                           code: int, message: str) -> None:
    path = tmp_path / "map.json"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    got, out, err = run(capsys, "map", "check", str(path))
    assert (got, out) == (code, "")
    assert message in err


def test_unreadable_input_is_a_usage_error(capsys: pytest.CaptureFixture[str],
                                           tmp_path: Path) -> None:
    for argv in (["map", "check", str(tmp_path / "missing.json")],
                 ["map", "show", str(tmp_path)],
                 ["map", "generate", "a.org", "--existing", str(tmp_path / "nope.json")]):
        code, out, err = run(capsys, *argv)
        assert (code, out) == (EXIT_USAGE, ""), argv
        assert err.startswith("esgf-nm: cannot read ")


def test_invalid_input_map_for_other_commands(capsys: pytest.CaptureFixture[str],
                                              tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"supernodes": [{"id": "1"}], "membernodes": [], "links": []}')
    for argv in (["map", "show", str(bad)], ["map", "convert", str(bad), "--to", "ours"],
                 ["map", "add-supernode", str(bad), "x.org"]):
        code, out, err = run(capsys, *argv)
        assert (code, out) == (EXIT_FAILURE, ""), argv
        assert "$.supernodes[0].hostname: is required" in err


def test_unwritable_output(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run(capsys, "map", "generate", "a.org", "-o",
                       str(tmp_path / "no" / "dir" / "map.json"))
    assert code == EXIT_USAGE
    assert "cannot" in err


# --------------------------------------------------------------------------------------------
# show and convert
# --------------------------------------------------------------------------------------------
def test_show_table(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "map", "show", str(MAPS / "federation.json"))
    assert code == EXIT_OK
    lines = out.splitlines()
    assert lines[0] == "supernodes: 4 (roster v2, capacity 3)"
    assert lines[1].split() == ["ID", "HOSTNAME", "HEALTH", "MEMBERS", "ADOPTED"]
    assert lines[4].split() == ["3", "sn-c.example.org", "unreachable", "0", "0"]
    rows = {line.split()[1]: line.split() for line in lines if line.startswith(("1.", "2.",
                                                                                "3."))}
    assert rows["dn1.c.example"] == ["3.1", "dn1.c.example", "CMIP6", "no", "3", "1", "good"]
    assert rows["dn3.c.example"][5] == "dn2.a.example"
    assert lines[-1] == "links not up: 1-3 down, 2-3 down, 3-5 down"


def test_show_json_of_a_legacy_map(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "map", "show", "--json", str(LEGACY / "gaps.json"))
    assert code == EXIT_OK
    doc = json.loads(out)
    assert doc["format"] == "legacy"
    assert [s["id"] for s in doc["supernodes"]] == ["1", "2", "5", "11"]
    vesg = next(x for x in doc["members"] if x["hostname"] == "vesg.ipsl.example")
    assert (vesg["home"], vesg["server"], vesg["adopted"]) == ("5", "1", True)
    assert len(doc["links"]) == 6


def test_convert_both_ways(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    ours = tmp_path / "ours.json"
    back = tmp_path / "back.json"
    source = LEGACY / "large.json"
    assert run(capsys, "map", "convert", str(source), "--to", "ours", "-o", str(ours))[0] == 0
    assert nm.map_from_json(read(ours)) == legacy.from_legacy(read(source))
    code, _, err = run(capsys, "map", "convert", str(ours), "--to", "legacy", "-o", str(back))
    assert (code, err) == (EXIT_OK, "")  # nothing lost from an imported map
    assert legacy.from_legacy(read(back)) == legacy.from_legacy(read(source))
    # Prototype style: sorted keys, indent 4.
    assert back.read_text() == json.dumps(read(back), indent=4, sort_keys=True) + "\n"


def test_convert_keeps_the_prototype_timestamp(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "map", "convert", str(LEGACY / "gaps.json"), "--to", "legacy")
    assert code == EXIT_OK
    assert json.loads(out)["create_timestamp"] == 1461172342.117


def test_convert_warns_about_what_the_prototype_format_loses(
        capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "map", "convert", str(MAPS / "federation.json"), "--to",
                         "legacy")
    assert code == EXIT_OK
    assert json.loads(out)["total_supernodes"] == 4
    assert "esgf-nm: warning: the prototype format cannot hold retired supernode ids 4" in err


def test_convert_requires_to(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "map", "convert", str(LEGACY / "gaps.json"))[0] == EXIT_USAGE


def test_map_without_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "map")
    assert code == EXIT_USAGE and "generate" in err


def test_stdin_input(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    class Stdin:
        buffer = __import__("io").BytesIO((LEGACY / "init.json").read_bytes())

    monkeypatch.setattr(sys, "stdin", Stdin)
    code, out, _ = run(capsys, "map", "check", "-")
    assert code == EXIT_OK and out.startswith("valid prototype map: 4 supernodes, 0 members")


# --------------------------------------------------------------------------------------------
# The real command, in a child process
# --------------------------------------------------------------------------------------------
def test_python_dash_m(tmp_path: Path) -> None:
    env = dict(os.environ)
    src = str(HERE.parent / "src")
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    target = tmp_path / "m.json"

    def child(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "esgf_nodemgr", *argv], env=env,
                              capture_output=True, text=True, timeout=60, check=False)

    done = child("map", "generate", "a.org", "b.org", "-o", str(target))
    assert done.returncode == 0, done.stderr
    done = child("map", "check", str(target))
    assert (done.returncode, done.stdout) == (
        0, "valid esgf-nodemgr map: 2 supernodes, 0 members, 1 links, roster v1\n")
    target.write_text("{}")
    done = child("map", "check", str(target))
    assert done.returncode == 1 and "$: not a node map" in done.stderr


def test_cli_module_lines(capsys: pytest.CaptureFixture[str]) -> None:
    # --help of every sub-command works (argparse exits 0).
    for sub in ("generate", "add-supernode", "check", "show", "convert"):
        code, out, _ = run(capsys, "map", sub, "--help")
        assert code == EXIT_OK and "usage: esgf-nm map " + sub in out




def test_check_warns_about_members_nobody_serves(capsys: pytest.CaptureFixture[str],
                                                 tmp_path: Path) -> None:
    doc = read(MAPS / "federation.json")
    doc["entries"]["4"] = {"supernode": "4", "version": 3, "next_seq": 2, "members": [
        {"id": "4.1", "hostname": "left.example", "project": "CMIP6"}]}
    path = tmp_path / "m.json"
    path.write_text(json.dumps(doc))
    code, out, _ = run(capsys, "map", "check", str(path))
    assert code == EXIT_OK
    assert out.splitlines()[1] == (
        "warning: $.entries['4']: member left.example belongs to supernode 4, which is not in "
        "the roster, and is served by nobody")
    # And the prototype format cannot hold it at all.
    code, _, err = run(capsys, "map", "convert", str(path), "--to", "legacy")
    assert code == EXIT_FAILURE
    assert "$.entries['4']: supernode '4' is not in the roster" in err
