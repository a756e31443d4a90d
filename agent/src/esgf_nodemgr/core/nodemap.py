"""The node map: the federation's replicated state, as immutable values.

The map is a set of *sections*, each an independently versioned register (see
``docs/protocol.md``):

===============  =====================================  ==========================================
section          owner / writer                          version
===============  =====================================  ==========================================
``roster``       the administrator (Ansible)             ``roster.version`` (only goes up)
``epoch``        bootstrap (supernode #1, once)          ``epoch.version``
``entry/<id>``   supernode ``<id>`` alone                ``entry.version``
``report/<id>``  supernode ``<id>`` alone                ``report.version``
``decision``     the leader of a round                   ``(decision.round, decision.leader)``
``timeline``     derived from decisions                  a bounded set, merged by union
===============  =====================================  ==========================================

Merging two maps takes, section by section, the value with the higher version (``merge.py``);
ties between different contents are broken by the canonical JSON text, so the merge is a
semilattice join whatever the arrival order.

This module holds the value classes, their JSON codec (strict: every problem is reported with
its JSON path) and the canonical encoding used for digests. It performs no IO.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass, field, replace
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from esgf_nodemgr.core.parse import Reader

FORMAT = "esgf-nodemgr/map/1"

#: Health of a supernode, as decided by a round leader. ``new``: never checked yet.
SUPERNODE_HEALTH = ("new", "good", "unhealthy", "bad", "unreachable")
#: Health values that mean "not serving": its members must be placed elsewhere.
DOWN_HEALTH = frozenset({"bad", "unreachable"})
#: Health of a member, as observed by the node serving it.
MEMBER_HEALTH = ("new", "good", "unreachable")
#: Status of a link between two supernodes. Links absent from a decision are ``up``; before the
#: first decision every link is ``unverified``. ``init`` comes from imported prototype maps.
LINK_STATUS = ("unverified", "init", "up", "down")

DEFAULT_PORT = 7443
DEFAULT_CAPACITY = 20
#: How many decision summaries the timeline keeps.
TIMELINE_LENGTH = 50

MAX_NODES = 10_000
MAX_HOSTNAME = 253


def canonical_json(value: Any) -> str:
    """Deterministic JSON text (sorted keys, no whitespace) used for digests and tie-breaks."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=False)


def id_number(node_id: str) -> Optional[int]:
    """The integer value of a numeric id ("11" -> 11), or None for ids like "3.7"."""
    # isascii: str.isdigit() is also true for digits int() refuses, such as "²".
    return int(node_id) if node_id.isascii() and node_id.isdigit() else None


def pair(a: str, b: str) -> Tuple[str, str]:
    """An unordered supernode pair in its canonical order (numeric ids numerically)."""
    return (a, b) if id_sort_key(a) <= id_sort_key(b) else (b, a)


@functools.lru_cache(maxsize=1 << 16)
def id_sort_key(node_id: str) -> Tuple[int, str]:
    """Sort numeric ids numerically ("2" before "11"), anything else after, by text.

    Memoized (a pure function of a short string): encoding a report sorts its peers with it,
    millions of times in a 50-supernode simulation."""
    number = id_number(node_id)
    return (number, "") if number is not None else (1 << 62, node_id)


# --------------------------------------------------------------------------------------------
# Value classes
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Supernode:
    """A supernode of the roster. ``address``/``port`` are where its agent listens."""

    id: str
    hostname: str
    address: str
    port: int = DEFAULT_PORT


@dataclass(frozen=True)
class RetiredSupernode:
    """A supernode removed from the roster; its id stays reserved for its hostname."""

    id: str
    hostname: str


@dataclass(frozen=True)
class Roster:
    """The ordered list of supernodes; order is bootstrap order and rotation order."""

    version: int = 0
    supernodes: Tuple[Supernode, ...] = ()
    retired: Tuple[RetiredSupernode, ...] = ()
    #: Every numeric id below ``next_id`` counts as used (by a supernode or a member).
    next_id: int = 1
    #: Maximum number of members one supernode serves (its own plus adopted ones).
    capacity: int = DEFAULT_CAPACITY

    @property
    def ids(self) -> Tuple[str, ...]:
        return tuple(s.id for s in self.supernodes)

    def by_id(self, node_id: str) -> Optional[Supernode]:
        for s in self.supernodes:
            if s.id == node_id:
                return s
        return None

    def by_hostname(self, hostname: str) -> Optional[Supernode]:
        for s in self.supernodes:
            if s.hostname == hostname:
                return s
        return None

    def links(self) -> List[Tuple[str, str]]:
        """One link per unordered supernode pair, N·(N-1)/2 of them, in roster order."""
        ids = self.ids
        return [pair(ids[i], ids[j]) for i in range(len(ids)) for j in range(i + 1, len(ids))]


@dataclass(frozen=True)
class Epoch:
    """The federation's epoch: round ``r`` starts at ``value + r * round length``."""

    version: int = 0
    value: Optional[float] = None


@dataclass(frozen=True)
class Member:
    """A member node as recorded in the entry of the supernode that accepted it."""

    id: str
    hostname: str
    project: str
    standby: bool = False
    #: Round in which it was accepted: the newer of two claims on one hostname wins.
    since: int = 0
    #: Where its agent listens (for probes and for the slice of the map it receives).
    address: str = ""
    port: int = DEFAULT_PORT

    def __post_init__(self) -> None:
        if not self.address:
            # Frozen dataclass: set the default (its hostname) once, at construction.
            object.__setattr__(self, "address", self.hostname)


@dataclass(frozen=True)
class Entry:
    """A supernode's own members. Only that supernode writes it (``version`` by it alone)."""

    supernode: str
    version: int = 0
    #: Next sequence number for member ids ``<supernode>.<seq>``: unique without coordination.
    next_seq: int = 1
    members: Tuple[Member, ...] = ()

    def member(self, hostname: str) -> Optional[Member]:
        for m in self.members:
            if m.hostname == hostname:
                return m
        return None


@dataclass(frozen=True)
class Report:
    """What a supernode observes: health of the members it serves, latency of its links."""

    supernode: str
    version: int = 0
    members: Mapping[str, str] = field(default_factory=dict)
    #: Round-trip time in milliseconds to each peer supernode id (None: unreachable).
    rtt_ms: Mapping[str, Optional[float]] = field(default_factory=dict)


@dataclass(frozen=True)
class Decision:
    """The state a round leader decided: health, links, who serves the members of the down.

    Each decision is complete (it restates everything), so the newest one is the truth;
    ``(round, leader)`` orders them.
    """

    round: int
    leader: str
    health: Mapping[str, str] = field(default_factory=dict)
    #: Links whose status is not ``up``: ``{(a, b): status}`` with ``(a, b)`` from ``pair``.
    links: Mapping[Tuple[str, str], str] = field(default_factory=dict)
    #: Member hostname -> serving node (a supernode id, or the hostname of a promoted standby)
    #: for members whose own supernode is down.
    placement: Mapping[str, str] = field(default_factory=dict)
    #: Hostnames of standby members promoted to serve members.
    promoted: Tuple[str, ...] = ()
    #: Members of down supernodes that could not be placed (no capacity, no standby).
    unplaced: Tuple[str, ...] = ()
    summary: str = ""

    @property
    def version(self) -> Tuple[int, str]:
        return (self.round, self.leader)

    def link_status(self, a: str, b: str) -> str:
        return self.links.get(pair(a, b), "up")

    def is_down(self, supernode_id: str) -> bool:
        return self.health.get(supernode_id, "new") in DOWN_HEALTH

    def same_state(self, other: Optional[Decision]) -> bool:
        """True when ``other`` decides the same state (ignoring who decided it and when)."""
        return other is not None and (
            dict(self.health) == dict(other.health)
            and dict(self.links) == dict(other.links)
            and dict(self.placement) == dict(other.placement)
            and self.promoted == other.promoted
            and self.unplaced == other.unplaced
        )


@dataclass(frozen=True)
class TimelineItem:
    """One line of the decision timeline ("round 1234: sn3 down, 4 members moved to …")."""

    round: int
    leader: str
    summary: str

    @property
    def version(self) -> Tuple[int, str]:
        return (self.round, self.leader)


@dataclass(frozen=True)
class NodeMap:
    """The whole replicated state of a federation, as one node knows it."""

    roster: Roster = field(default_factory=Roster)
    epoch: Epoch = field(default_factory=Epoch)
    entries: Mapping[str, Entry] = field(default_factory=dict)
    reports: Mapping[str, Report] = field(default_factory=dict)
    decision: Optional[Decision] = None
    timeline: Tuple[TimelineItem, ...] = ()

    def entry(self, supernode_id: str) -> Entry:
        return self.entries.get(supernode_id) or Entry(supernode=supernode_id)

    def report(self, supernode_id: str) -> Report:
        return self.reports.get(supernode_id) or Report(supernode=supernode_id)

    def with_entry(self, entry: Entry) -> NodeMap:
        entries = dict(self.entries)
        entries[entry.supernode] = entry
        return replace(self, entries=entries)

    def with_report(self, report: Report) -> NodeMap:
        reports = dict(self.reports)
        reports[report.supernode] = report
        return replace(self, reports=reports)

    def all_members(self) -> List[Tuple[str, Member]]:
        """Every (supernode id, member) claim in every entry, in a deterministic order."""
        claims = [(sid, m) for sid, e in self.entries.items() for m in e.members]
        claims.sort(key=lambda c: (c[1].hostname, id_sort_key(c[0])))
        return claims

    def used_ids(self) -> List[str]:
        """Every id in use or reserved: supernodes, retired supernodes, members."""
        ids = [s.id for s in self.roster.supernodes] + [r.id for r in self.roster.retired]
        ids += [m.id for e in self.entries.values() for m in e.members]
        return ids


# --------------------------------------------------------------------------------------------
# JSON codec
# --------------------------------------------------------------------------------------------
def supernode_to_json(s: Supernode) -> Dict[str, Any]:
    return {"id": s.id, "hostname": s.hostname, "address": s.address, "port": s.port}


def roster_to_json(r: Roster) -> Dict[str, Any]:
    return {
        "version": r.version,
        "capacity": r.capacity,
        "next_id": r.next_id,
        "supernodes": [supernode_to_json(s) for s in r.supernodes],
        "retired": [{"id": x.id, "hostname": x.hostname} for x in r.retired],
    }


def epoch_to_json(e: Epoch) -> Dict[str, Any]:
    return {"version": e.version, "value": e.value}


def member_to_json(m: Member) -> Dict[str, Any]:
    return {"id": m.id, "hostname": m.hostname, "project": m.project, "standby": m.standby,
            "since": m.since, "address": m.address, "port": m.port}


def entry_to_json(e: Entry) -> Dict[str, Any]:
    return {"supernode": e.supernode, "version": e.version, "next_seq": e.next_seq,
            "members": [member_to_json(m) for m in sorted(e.members, key=lambda m: m.hostname)]}


def report_to_json(r: Report) -> Dict[str, Any]:
    return {"supernode": r.supernode, "version": r.version,
            "members": dict(sorted(r.members.items())),
            "rtt_ms": {k: r.rtt_ms[k] for k in sorted(r.rtt_ms, key=id_sort_key)}}


def decision_to_json(d: Decision) -> Dict[str, Any]:
    return {
        "round": d.round,
        "leader": d.leader,
        "health": {k: d.health[k] for k in sorted(d.health, key=id_sort_key)},
        "links": [[a, b, s] for (a, b), s in sorted(
            d.links.items(), key=lambda kv: (id_sort_key(kv[0][0]), id_sort_key(kv[0][1])))],
        "placement": dict(sorted(d.placement.items())),
        "promoted": list(d.promoted),
        "unplaced": list(d.unplaced),
        "summary": d.summary,
    }


def timeline_to_json(items: Sequence[TimelineItem]) -> List[Dict[str, Any]]:
    return [{"round": t.round, "leader": t.leader, "summary": t.summary} for t in items]


def map_to_json(m: NodeMap) -> Dict[str, Any]:
    """Our map format as a JSON-able dict (see ``nodemap.schema.json``)."""
    return {
        "format": FORMAT,
        "roster": roster_to_json(m.roster),
        "epoch": epoch_to_json(m.epoch),
        "entries": {k: entry_to_json(m.entries[k]) for k in sorted(m.entries, key=id_sort_key)},
        "reports": {k: report_to_json(m.reports[k]) for k in sorted(m.reports, key=id_sort_key)},
        "decision": decision_to_json(m.decision) if m.decision is not None else None,
        "timeline": timeline_to_json(m.timeline),
    }


# -- parsing ---------------------------------------------------------------------------------
def _node_id(r: Reader, value: Any, path: str) -> str:
    text = r.string(value, path, max_len=64)
    if text and not all(c.isalnum() or c in ".-_" for c in text):
        r.problem(path, f"node id may hold letters, digits, '.', '-' and '_' only; got {text!r}")
    return text


def _hostname(r: Reader, value: Any, path: str) -> str:
    text = r.string(value, path, max_len=MAX_HOSTNAME)
    if text and (any(c.isspace() for c in text) or "/" in text):
        r.problem(path, f"not a hostname: {text!r}")
    return text


def parse_supernode(r: Reader, value: Any, path: str) -> Supernode:
    o = r.obj(value, path)
    r.keys(o, path, ["id", "hostname"], ["address", "port"])
    hostname = _hostname(r, o.get("hostname"), f"{path}.hostname")
    address = o.get("address", hostname)
    return Supernode(
        id=_node_id(r, o.get("id"), f"{path}.id"),
        hostname=hostname,
        address=_hostname(r, address, f"{path}.address"),
        port=r.integer(o.get("port", DEFAULT_PORT), f"{path}.port", minimum=1, maximum=65535),
    )


def parse_roster(r: Reader, value: Any, path: str) -> Roster:
    o = r.obj(value, path)
    r.keys(o, path, ["version", "supernodes"], ["capacity", "next_id", "retired"])
    sns = tuple(parse_supernode(r, v, f"{path}.supernodes[{i}]")
                for i, v in enumerate(r.array(o.get("supernodes"), f"{path}.supernodes")))
    retired = []
    for i, v in enumerate(r.array(o.get("retired", []), f"{path}.retired")):
        ro = r.obj(v, f"{path}.retired[{i}]")
        r.keys(ro, f"{path}.retired[{i}]", ["id", "hostname"])
        retired.append(RetiredSupernode(
            id=_node_id(r, ro.get("id"), f"{path}.retired[{i}].id"),
            hostname=_hostname(r, ro.get("hostname"), f"{path}.retired[{i}].hostname")))
    roster = Roster(
        version=r.integer(o.get("version"), f"{path}.version", minimum=0),
        supernodes=sns,
        retired=tuple(retired),
        next_id=r.integer(o.get("next_id", 1), f"{path}.next_id", minimum=1),
        capacity=r.integer(o.get("capacity", DEFAULT_CAPACITY), f"{path}.capacity", minimum=1,
                           maximum=MAX_NODES),
    )
    _check_roster(r, roster, path)
    return roster


def _check_roster(r: Reader, roster: Roster, path: str) -> None:
    seen_ids: Dict[str, str] = {}
    seen_hosts: Dict[str, str] = {}
    for i, s in enumerate(roster.supernodes):
        where = f"{path}.supernodes[{i}]"
        if s.id in seen_ids:
            r.problem(f"{where}.id", f"id {s.id!r} used twice (also {seen_ids[s.id]})")
        if s.hostname in seen_hosts:
            r.problem(f"{where}.hostname",
                      f"hostname {s.hostname!r} listed twice (also {seen_hosts[s.hostname]})")
        seen_ids.setdefault(s.id, where)
        seen_hosts.setdefault(s.hostname, where)
    for i, x in enumerate(roster.retired):
        where = f"{path}.retired[{i}]"
        if x.id in seen_ids:
            r.problem(f"{where}.id", f"retired id {x.id!r} is also in use at {seen_ids[x.id]}")
        if x.hostname in seen_hosts:
            r.problem(f"{where}.hostname", f"retired hostname {x.hostname!r} is also active "
                      f"at {seen_hosts[x.hostname]}")
    for node_id in list(seen_ids) + [x.id for x in roster.retired]:
        n = id_number(node_id)
        if n is not None and n >= roster.next_id:
            r.problem(f"{path}.next_id", f"must be above every numeric id in use; id {node_id} "
                      f">= next_id {roster.next_id}")


def parse_epoch(r: Reader, value: Any, path: str) -> Epoch:
    o = r.obj(value, path)
    r.keys(o, path, ["version", "value"])
    raw = o.get("value")
    return Epoch(version=r.integer(o.get("version"), f"{path}.version", minimum=0),
                 value=None if raw is None else r.number(raw, f"{path}.value", minimum=0))


def parse_member(r: Reader, value: Any, path: str) -> Member:
    o = r.obj(value, path)
    r.keys(o, path, ["id", "hostname", "project"], ["standby", "since", "address", "port"])
    hostname = _hostname(r, o.get("hostname"), f"{path}.hostname")
    return Member(
        id=_node_id(r, o.get("id"), f"{path}.id"),
        hostname=hostname,
        project=r.string(o.get("project"), f"{path}.project", max_len=128),
        standby=r.boolean(o.get("standby", False), f"{path}.standby"),
        since=r.integer(o.get("since", 0), f"{path}.since", minimum=0),
        address=_hostname(r, o.get("address", hostname), f"{path}.address"),
        port=r.integer(o.get("port", DEFAULT_PORT), f"{path}.port", minimum=1, maximum=65535),
    )


def parse_entry(r: Reader, value: Any, path: str, key: Optional[str] = None) -> Entry:
    o = r.obj(value, path)
    r.keys(o, path, ["supernode", "version", "members"], ["next_seq"])
    sid = _node_id(r, o.get("supernode"), f"{path}.supernode")
    if key is not None and sid != key:
        r.problem(f"{path}.supernode", f"entry is filed under {key!r} but says {sid!r}")
    members = tuple(parse_member(r, v, f"{path}.members[{i}]")
                    for i, v in enumerate(r.array(o.get("members"), f"{path}.members")))
    hosts = [m.hostname for m in members]
    for h in sorted({h for h in hosts if hosts.count(h) > 1}):
        r.problem(f"{path}.members", f"member {h!r} listed twice")
    return Entry(supernode=sid,
                 version=r.integer(o.get("version"), f"{path}.version", minimum=0),
                 next_seq=r.integer(o.get("next_seq", 1), f"{path}.next_seq", minimum=1),
                 members=tuple(sorted(members, key=lambda m: m.hostname)))


def parse_report(r: Reader, value: Any, path: str, key: Optional[str] = None) -> Report:
    o = r.obj(value, path)
    r.keys(o, path, ["supernode", "version"], ["members", "rtt_ms"])
    sid = _node_id(r, o.get("supernode"), f"{path}.supernode")
    if key is not None and sid != key:
        r.problem(f"{path}.supernode", f"report is filed under {key!r} but says {sid!r}")

    def rtt(v: Any, p: str) -> Optional[float]:
        return None if v is None else r.number(v, p, minimum=0)

    return Report(
        supernode=sid,
        version=r.integer(o.get("version"), f"{path}.version", minimum=0),
        members=r.mapping(o.get("members", {}), f"{path}.members",
                          lambda v, p: r.choice(v, p, MEMBER_HEALTH)),
        rtt_ms=r.mapping(o.get("rtt_ms", {}), f"{path}.rtt_ms", rtt),
    )


def parse_decision(r: Reader, value: Any, path: str) -> Decision:
    o = r.obj(value, path)
    r.keys(o, path, ["round", "leader"],
           ["health", "links", "placement", "promoted", "unplaced", "summary"])
    links: Dict[Tuple[str, str], str] = {}
    for i, v in enumerate(r.array(o.get("links", []), f"{path}.links")):
        item = r.array(v, f"{path}.links[{i}]")
        if len(item) != 3:
            r.problem(f"{path}.links[{i}]", "expected [from, to, status]")
            continue
        a = _node_id(r, item[0], f"{path}.links[{i}][0]")
        b = _node_id(r, item[1], f"{path}.links[{i}][1]")
        links[pair(a, b)] = r.choice(item[2], f"{path}.links[{i}][2]", LINK_STATUS)
    return Decision(
        round=r.integer(o.get("round"), f"{path}.round", minimum=0),
        leader=r.string(o.get("leader"), f"{path}.leader", allow_empty=True, max_len=64),
        health=r.mapping(o.get("health", {}), f"{path}.health",
                         lambda v, p: r.choice(v, p, SUPERNODE_HEALTH)),
        links=links,
        placement=r.mapping(o.get("placement", {}), f"{path}.placement",
                            lambda v, p: r.string(v, p, max_len=MAX_HOSTNAME)),
        promoted=tuple(r.string(v, f"{path}.promoted[{i}]") for i, v in
                       enumerate(r.array(o.get("promoted", []), f"{path}.promoted"))),
        unplaced=tuple(r.string(v, f"{path}.unplaced[{i}]") for i, v in
                       enumerate(r.array(o.get("unplaced", []), f"{path}.unplaced"))),
        summary=r.string(o.get("summary", ""), f"{path}.summary", allow_empty=True,
                         max_len=4096),
    )


def parse_timeline(r: Reader, value: Any, path: str) -> Tuple[TimelineItem, ...]:
    items = []
    for i, v in enumerate(r.array(value, path)):
        o = r.obj(v, f"{path}[{i}]")
        r.keys(o, f"{path}[{i}]", ["round", "leader", "summary"])
        items.append(TimelineItem(
            round=r.integer(o.get("round"), f"{path}[{i}].round", minimum=0),
            leader=r.string(o.get("leader"), f"{path}[{i}].leader", allow_empty=True),
            summary=r.string(o.get("summary"), f"{path}[{i}].summary", allow_empty=True,
                             max_len=4096)))
    return tuple(sorted(items, key=lambda t: t.version))


def map_from_json(value: Any) -> NodeMap:
    """Parse our map format; raise ``MapFormatError`` listing every problem with its path."""
    r = Reader()
    o = r.obj(value, "$")
    r.keys(o, "$", ["format", "roster"], ["epoch", "entries", "reports", "decision",
                                          "timeline"])
    fmt = o.get("format")
    if "format" in o and fmt != FORMAT:
        r.problem("$.format", f"expected {FORMAT!r}, got {fmt!r}")
    roster = parse_roster(r, o.get("roster"), "$.roster")
    epoch = parse_epoch(r, o.get("epoch", {"version": 0, "value": None}), "$.epoch")
    entries = r.mapping(o.get("entries", {}), "$.entries",
                        lambda v, p: parse_entry(r, v, p))
    for key, e in entries.items():
        if e.supernode and e.supernode != key:
            r.problem(f"$.entries[{key!r}].supernode",
                      f"entry is filed under {key!r} but says {e.supernode!r}")
    reports = r.mapping(o.get("reports", {}), "$.reports", lambda v, p: parse_report(r, v, p))
    for key, rep in reports.items():
        if rep.supernode and rep.supernode != key:
            r.problem(f"$.reports[{key!r}].supernode",
                      f"report is filed under {key!r} but says {rep.supernode!r}")
    decision = None if o.get("decision") is None else parse_decision(r, o["decision"],
                                                                      "$.decision")
    timeline = parse_timeline(r, o.get("timeline", []), "$.timeline")
    nodemap = NodeMap(roster=roster, epoch=epoch, entries=entries, reports=reports,
                      decision=decision, timeline=timeline)
    check_ids(r, nodemap)
    r.raise_if_problems()
    return nodemap


def check_ids(r: Reader, m: NodeMap) -> None:
    """Cross-section checks: ids unique across supernodes and members; ids below next_id."""
    owner: Dict[str, str] = {}
    for s in m.roster.supernodes:
        owner[s.id] = f"supernode {s.hostname}"
    for x in m.roster.retired:
        owner.setdefault(x.id, f"retired supernode {x.hostname}")
    for sid in sorted(m.entries, key=id_sort_key):
        for mem in m.entries[sid].members:
            where = f"$.entries[{sid!r}].members[{mem.hostname!r}].id"
            prev = owner.get(mem.id)
            if prev is not None and prev != f"member {mem.hostname}":
                r.problem(where, f"id {mem.id!r} of member {mem.hostname} is already used by "
                          f"{prev}")
            owner.setdefault(mem.id, f"member {mem.hostname}")
            n = id_number(mem.id)
            if n is not None and n >= m.roster.next_id:
                r.problem("$.roster.next_id", f"must be above every numeric id in use; member "
                          f"id {mem.id} >= next_id {m.roster.next_id}")


def load_map_text(text: str) -> NodeMap:
    """Parse our map format from JSON text."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        from esgf_nodemgr.core.errors import MapFormatError

        raise MapFormatError([f"$: not valid JSON: {exc}"]) from exc
    return map_from_json(value)


def dump_map_text(m: NodeMap) -> str:
    """Our map format as pretty JSON text (stable key order, newline at the end)."""
    return json.dumps(map_to_json(m), indent=2, sort_keys=False) + "\n"


# --------------------------------------------------------------------------------------------
# Sections: the unit of versioning, merging, persistence and anti-entropy
# --------------------------------------------------------------------------------------------
SectionVersion = Tuple[Any, ...]


def sections(m: NodeMap) -> Dict[str, Dict[str, Any]]:
    """The map split into named sections (JSON values), as stored and exchanged."""
    out: Dict[str, Dict[str, Any]] = {
        "roster": roster_to_json(m.roster),
        "epoch": epoch_to_json(m.epoch),
    }
    for sid, e in m.entries.items():
        out[f"entry/{sid}"] = entry_to_json(e)
    for sid, rep in m.reports.items():
        out[f"report/{sid}"] = report_to_json(rep)
    if m.decision is not None:
        out["decision"] = decision_to_json(m.decision)
    if m.timeline:
        out["timeline"] = {"items": timeline_to_json(m.timeline)}
    return out


def section_version(name: str, value: Mapping[str, Any]) -> SectionVersion:
    """The version of a section value, comparable with others of the same name."""
    if name == "decision":
        return (int(value["round"]), str(value["leader"]))
    if name == "timeline":
        items = value.get("items", [])
        return (len(items), items[-1]["round"] if items else -1)
    return (int(value["version"]),)


def from_sections(values: Mapping[str, Any]) -> NodeMap:
    """Rebuild a map from sections (as stored); raises ``MapFormatError`` on bad content."""
    doc: Dict[str, Any] = {"format": FORMAT,
                           "roster": values.get("roster", roster_to_json(Roster())),
                           "entries": {}, "reports": {}}
    for name, value in values.items():
        if name in ("roster",):
            continue
        if name == "epoch":
            doc["epoch"] = value
        elif name == "decision":
            doc["decision"] = value
        elif name == "timeline":
            doc["timeline"] = value.get("items", []) if isinstance(value, dict) else value
        elif name.startswith("entry/"):
            doc["entries"][name[len("entry/"):]] = value
        elif name.startswith("report/"):
            doc["reports"][name[len("report/"):]] = value
        else:
            from esgf_nodemgr.core.errors import MapFormatError

            raise MapFormatError([f"$: unknown section {name!r}"])
    return map_from_json(doc)


def section_fingerprint(value: Any) -> str:
    """A short fingerprint of one section's JSON value."""
    return hashlib.sha256(canonical_json(value).encode()).hexdigest()[:16]


def digest(m: NodeMap) -> str:
    """A short fingerprint of the whole map: equal digests mean equal maps.

    It hashes the section names with each section's fingerprint, not the whole text, so a
    node can keep the fingerprints of unchanged sections and rehash only the changed one.
    """
    fps = {name: section_fingerprint(value) for name, value in sections(m).items()}
    return hashlib.sha256(canonical_json(fps).encode()).hexdigest()[:32]
