"""The hot-path caches added to the core for large simulations change no result.

``merge.SectionCache`` must give exactly ``versions``, ``nm.sections`` and ``nm.digest``;
``merge.changed_sections`` (which now compares section objects) must equal the JSON-level
difference it replaced. Checked on every map a churn simulation's supernodes go through.
"""

from __future__ import annotations

from typing import Any, Dict, List

from esgf_nodemgr.core import merge as mg
from esgf_nodemgr.core import nodemap as nm
from esgf_nodemgr.core.events import Effect
from esgf_nodemgr.core.supernode import SupernodeCore
from esgf_nodemgr.sim.engine import Simulator
from esgf_nodemgr.sim.scenario import OursRun, Spec


def _json_diff(before: nm.NodeMap, after: nm.NodeMap) -> Dict[str, Any]:
    old, new = nm.sections(before), nm.sections(after)
    return {k: v for k, v in new.items() if old.get(k) != v}


def test_section_cache_and_changed_sections_match_the_plain_functions() -> None:
    run = OursRun(Spec(supernodes=4, members=10, seed=9, scenario="churn", duration_s=40.0,
                       samples=0))
    caches: Dict[str, mg.SectionCache] = {}
    last: Dict[str, nm.NodeMap] = {}
    checked: List[int] = []

    def observe(sim: Simulator, host: str, _effects: List[Effect]) -> None:
        core = sim.nodes[host].core
        if not isinstance(core, SupernodeCore):
            return
        m = core.map
        prev = last.get(host)
        if prev is m:
            return
        cache = caches.setdefault(host, mg.SectionCache())
        assert cache.versions(m) == mg.versions(m)
        assert cache.sections(m) == nm.sections(m)
        assert cache.digest(m) == nm.digest(m) == core.digest
        if prev is not None:
            assert mg.changed_sections(prev, m) == _json_diff(prev, m)
        last[host] = m
        checked.append(1)

    run.sim.observers.append(observe)
    result = run.run()
    assert result["violations"] == []
    assert len(checked) > 50
