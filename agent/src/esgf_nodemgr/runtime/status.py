"""The agent's status document (``/esgf-nm/v1/status``, ``esgf-nm status --json``).

Built by the loop from the core's state after it changes and published as one immutable
snapshot, so readers never touch the core (see DESIGN.md §3: handlers never read or mutate
state owned by the loop).
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

from esgf_nodemgr import __version__
from esgf_nodemgr.core import nodemap as nm
from esgf_nodemgr.core import view as vw
from esgf_nodemgr.core.member import MemberCore
from esgf_nodemgr.core.supernode import SupernodeCore


def supernode_status(core: SupernodeCore, now: float) -> Dict[str, Any]:
    m = core.map
    sch = core.schedule()
    r = sch.round_at(now) if sch else None
    me = core.my_id
    leader = core.leader_of(r) if r is not None and r >= 0 else None
    hostnames = {s.id: s.hostname for s in m.roster.supernodes}
    sn_rows: List[Dict[str, Any]] = []
    for v in vw.supernodes(m):
        sn_rows.append({"id": v.id, "hostname": v.hostname, "health": v.health,
                        "members": v.members, "adopted": v.adopted,
                        "me": v.id == me})
    member_rows = []
    for mv in vw.members(m):
        server_host = hostnames.get(mv.server or "", mv.server)
        member_rows.append({"id": mv.id, "hostname": mv.hostname, "project": mv.project,
                            "standby": mv.standby, "home": mv.home,
                            "home_hostname": hostnames.get(mv.home, mv.home),
                            "server": mv.server, "server_hostname": server_host,
                            "adopted": mv.adopted, "health": mv.health})
    links = []
    for a, b in m.roster.links():
        rtt = m.report(a).rtt_ms.get(b)
        if rtt is None:
            rtt = m.report(b).rtt_ms.get(a)
        links.append({"from": a, "to": b, "status": vw.link_status(m, a, b), "rtt_ms": rtt})
    d = m.decision
    # Whether each other supernode held this very map when it last answered a probe: an
    # operator (or a test) sees "the map is the same everywhere" from one node.
    digest = core.digest
    in_sync: List[str] = []
    differ: List[str] = []
    for s in m.roster.supernodes:
        if s.id == me:
            continue
        (in_sync if core.peer_digests.get(s.id) == digest else differ).append(s.hostname)
    return {
        "role": "supernode",
        "hostname": core.hostname,
        "id": me,
        "version": __version__,
        "round": r,
        "round_s": core.config.round_s,
        "leader": leader,
        "leader_hostname": hostnames.get(leader or ""),
        "epoch": m.epoch.value,
        "map": {"digest": digest, "roster_version": m.roster.version,
                "peers_in_sync": in_sync, "peers_differ": differ,
                "decision": list(d.version) if d else None,
                "entries": {k: e.version for k, e in m.entries.items()},
                "capacity": m.roster.capacity},
        "synced": core.synced,
        "roster": nm.roster_to_json(m.roster),
        "supernodes": sn_rows,
        "members": member_rows,
        "links": links,
        "unplaced": list(d.unplaced) if d else [],
        "promoted": list(d.promoted) if d else [],
        "timeline": [{"round": t.round, "leader": hostnames.get(t.leader, t.leader),
                      "summary": t.summary} for t in reversed(m.timeline)],
        "local_links": {hostnames.get(p, p): {"status": t.status, "rtt_ms": t.rtt_ms}
                        for p, t in core.trackers.items()},
        "stats": dict(core.stats),
    }


def member_status(core: MemberCore, now: float) -> Dict[str, Any]:
    st = core.status()
    sch = core.schedule()
    st.update({
        "role": "member",
        "version": __version__,
        "round": sch.round_at(now) if sch else None,
        "round_s": core.config.round_s,
        "epoch": core.epoch.value,
        "roster": nm.roster_to_json(core.roster),
        "roster_version": core.roster.version,
    })
    return st


def build_status(core: Any, now: float, extra: Optional[Dict[str, Any]] = None
                 ) -> Dict[str, Any]:
    """The status document for ``core`` (either kind) plus ``extra`` keys from the runtime."""
    if isinstance(core, SupernodeCore):
        doc = supernode_status(core, now)
    else:
        doc = member_status(core, now)
    doc["generated_at"] = now
    if extra:
        doc.update(extra)
    return doc


def map_json(core: Any) -> Dict[str, Any]:
    """The node's map in our format (members hold only their roster)."""
    if isinstance(core, SupernodeCore):
        return nm.map_to_json(core.map)
    return nm.map_to_json(nm.NodeMap(roster=core.roster, epoch=core.epoch))
