"""``node_files``: directories and files in one run; unchanged reruns, check mode, diff, validate."""

from __future__ import annotations

import os
import stat

from ansible_collections.esgf.nodemgr.plugins.modules import node_files


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def spec(tmp_path):
    return {
        "directories": [{"path": str(tmp_path / "etc"), "mode": "0750"},
                        {"path": str(tmp_path / "state" / "deep"), "mode": "0700"}],
        "files": [{"path": str(tmp_path / "etc" / "agent.yml"), "content": "a: 1\n", "mode": "0640"},
                  {"path": str(tmp_path / "etc" / "ca.pem"), "content": "CA\n"}],
    }


def test_creates_then_changes_nothing(run_module, tmp_path):
    args = spec(tmp_path)
    first = run_module(node_files, args)
    assert first["changed"]
    assert first["changed_paths"] == [str(tmp_path / "etc"), str(tmp_path / "state" / "deep"),
                                      str(tmp_path / "etc" / "agent.yml"), str(tmp_path / "etc" / "ca.pem")]
    assert mode(tmp_path / "etc") == 0o750 and mode(tmp_path / "state" / "deep") == 0o700
    assert (tmp_path / "etc" / "agent.yml").read_text() == "a: 1\n"
    assert mode(tmp_path / "etc" / "agent.yml") == 0o640
    assert mode(tmp_path / "etc" / "ca.pem") == 0o644
    again = run_module(node_files, args)
    assert not again["changed"] and again["changed_paths"] == []
    # No temporary file left behind.
    assert sorted(os.listdir(tmp_path / "etc")) == ["agent.yml", "ca.pem"]


def test_check_mode_writes_nothing_and_diff_shows_the_change(run_module, tmp_path):
    args = spec(tmp_path)
    preview = run_module(node_files, args, check_mode=True, diff=True)
    assert preview["changed"] and len(preview["changed_paths"]) == 4
    assert os.listdir(tmp_path) == []
    run_module(node_files, args)
    args["files"][0]["content"] = "a: 2\n"
    preview = run_module(node_files, args, check_mode=True, diff=True)
    assert preview["changed_paths"] == [str(tmp_path / "etc" / "agent.yml")]
    assert preview["diff"] == [{"before_header": str(tmp_path / "etc" / "agent.yml"),
                                "after_header": str(tmp_path / "etc" / "agent.yml"),
                                "before": "a: 1\n", "after": "a: 2\n"}]
    assert (tmp_path / "etc" / "agent.yml").read_text() == "a: 1\n"


def test_mode_and_content_changes_are_reported(run_module, tmp_path):
    args = spec(tmp_path)
    run_module(node_files, args)
    os.chmod(tmp_path / "etc" / "agent.yml", 0o666)
    res = run_module(node_files, args)
    assert res["changed_paths"] == [str(tmp_path / "etc" / "agent.yml")]
    assert mode(tmp_path / "etc" / "agent.yml") == 0o640
    args["files"][1]["content"] = "CA2\n"
    res = run_module(node_files, args)
    assert res["changed_paths"] == [str(tmp_path / "etc" / "ca.pem")]
    assert (tmp_path / "etc" / "ca.pem").read_text() == "CA2\n"


def test_validate_refuses_bad_content_and_keeps_the_old_file(run_module, tmp_path):
    target = tmp_path / "agent.yml"
    target.write_text("good\n")
    args = {"files": [{"path": str(target), "content": "bad\n",
                       "validate": "grep -q good %s"}]}
    res = run_module(node_files, args)
    assert res["failed"] and "failed validation" in res["msg"]
    assert target.read_text() == "good\n"
    assert os.listdir(tmp_path) == ["agent.yml"]
    args["files"][0]["content"] = "still good\n"
    assert run_module(node_files, args)["changed"]
    assert target.read_text() == "still good\n"


def test_a_file_where_a_directory_should_be_fails_clearly(run_module, tmp_path):
    (tmp_path / "etc").write_text("oops")
    res = run_module(node_files, {"directories": [{"path": str(tmp_path / "etc")}]})
    assert res["failed"] and "is not a directory" in res["msg"]


def test_missing_directory_of_a_file_fails_clearly(run_module, tmp_path):
    res = run_module(node_files, {"files": [{"path": str(tmp_path / "nope" / "f"), "content": "x"}]})
    assert res["failed"] and "does not exist" in res["msg"]
