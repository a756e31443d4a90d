"""Merging node maps: a join of per-section last-writer-wins registers.

Laws (property-tested in ``tests/test_merge_laws.py``):

- commutative: ``merge(a, b) == merge(b, a)``
- associative: ``merge(merge(a, b), c) == merge(a, merge(b, c))``
- idempotent:  ``merge(a, a) == a``
- monotone:    no section of ``merge(a, b)`` has a lower version than in ``a`` or ``b``

They hold because each section is merged by taking the maximum of a *total* order: its version
first, then the empty default of the section (below anything real), then — only for two
different values claiming the same version, which a correct writer never produces — the
canonical JSON text. The timeline is merged by union and truncation to
the newest ``TIMELINE_LENGTH`` items, which is also a join (truncating the union of two
truncated sets keeps the same newest items as truncating the union of the full sets).
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple, TypeVar

from esgf_nodemgr.core import nodemap as nm
from esgf_nodemgr.core.errors import MapFormatError
from esgf_nodemgr.core.parse import Reader

T = TypeVar("T")


def _pick(a: T, b: T, version: Callable[[T], Any], encode: Callable[[T], Any],
          bottom: Optional[T] = None) -> T:
    va, vb = version(a), version(b)
    if va != vb:
        return a if va > vb else b
    if a == b:
        return a
    # The empty default (what a partial map holds for a section it did not carry) is below
    # every real value of the same version, or an absent section could erase real content.
    if bottom is not None and a == bottom:
        return b
    if bottom is not None and b == bottom:
        return a
    # Same version, different content: only a buggy or restarted writer does this; any total
    # order keeps the merge a semilattice, so the canonical text decides.
    return a if nm.canonical_json(encode(a)) >= nm.canonical_json(encode(b)) else b


def merge_roster(a: nm.Roster, b: nm.Roster) -> nm.Roster:
    return _pick(a, b, lambda r: r.version, nm.roster_to_json, nm.Roster())


def merge_epoch(a: nm.Epoch, b: nm.Epoch) -> nm.Epoch:
    return _pick(a, b, lambda e: e.version, nm.epoch_to_json, nm.Epoch())


def merge_entry(a: nm.Entry, b: nm.Entry) -> nm.Entry:
    return _pick(a, b, lambda e: e.version, nm.entry_to_json, nm.Entry(supernode=a.supernode))


def merge_report(a: nm.Report, b: nm.Report) -> nm.Report:
    return _pick(a, b, lambda r: r.version, nm.report_to_json,
                 nm.Report(supernode=a.supernode))


def merge_decision(a: Optional[nm.Decision], b: Optional[nm.Decision]) -> Optional[nm.Decision]:
    if a is None:
        return b
    if b is None:
        return a
    return _pick(a, b, lambda d: d.version, nm.decision_to_json)


def merge_timeline(a: Tuple[nm.TimelineItem, ...], b: Tuple[nm.TimelineItem, ...],
                   length: int = nm.TIMELINE_LENGTH) -> Tuple[nm.TimelineItem, ...]:
    by_version: Dict[Tuple[int, str], nm.TimelineItem] = {}
    for item in a + b:
        prev = by_version.get(item.version)
        if prev is None or prev.summary < item.summary:
            by_version[item.version] = item
    items = sorted(by_version.values(), key=lambda t: t.version)
    return tuple(items[-length:]) if length > 0 else ()


def _merge_dict(a: Mapping[str, T], b: Mapping[str, T], f: Callable[[T, T], T]) -> Dict[str, T]:
    out = dict(a)
    for key, value in b.items():
        out[key] = f(out[key], value) if key in out else value
    return out


def merge(a: nm.NodeMap, b: nm.NodeMap) -> nm.NodeMap:
    """Join two maps section by section (see the module docstring for the laws)."""
    if a is b:
        return a
    return nm.NodeMap(
        roster=merge_roster(a.roster, b.roster),
        epoch=merge_epoch(a.epoch, b.epoch),
        entries=_merge_dict(a.entries, b.entries, merge_entry),
        reports=_merge_dict(a.reports, b.reports, merge_report),
        decision=merge_decision(a.decision, b.decision),
        timeline=merge_timeline(a.timeline, b.timeline),
    )


# --------------------------------------------------------------------------------------------
# Section-level access for anti-entropy and persistence
# --------------------------------------------------------------------------------------------
def _fingerprint(value: Any) -> str:
    return nm.section_fingerprint(value)


def versions(m: nm.NodeMap) -> Dict[str, Any]:
    """``{section name: [version…, fingerprint]}`` of every section of ``m``.

    The version orders values of a section; the fingerprint (of the section's content) is only
    compared for equality. It lets anti-entropy notice two *different* values at the same
    version — which a correct writer never produces, but a node restarted from an empty store
    or a timeline (a set merged by union) can — and exchange them, so that the merge's
    tie-break brings both sides to the same value instead of leaving them apart forever.
    """
    values = nm.sections(m)
    return {name: [*_version_key(name, value), _fingerprint(value)]
            for name, value in values.items()}


def _version_key(name: str, value: Mapping[str, Any]) -> Tuple[Any, ...]:
    if name == "decision":
        return (int(value["round"]), str(value["leader"]))
    if name == "timeline":
        items = value.get("items", [])
        return (int(items[-1]["round"]), str(items[-1]["leader"])) if items else (-1, "")
    return (int(value["version"]),)


def _differs(name: str, mine: Any, theirs: Any) -> Tuple[bool, bool]:
    """(send mine, fetch theirs) for one section given both ``versions`` entries."""
    if theirs is None:
        return True, False
    mv, mf = tuple(mine[:-1]), mine[-1]
    tv, tf = tuple(theirs[:-1]), theirs[-1]
    if mf == tf:
        return False, False
    if name == "timeline" or mv == tv:
        # A union (timeline) or a same-version conflict: both sides need both values.
        return True, True
    return mv > tv, tv > mv


def _encode_section(m: nm.NodeMap, name: str) -> Any:
    if name == "roster":
        return nm.roster_to_json(m.roster)
    if name == "epoch":
        return nm.epoch_to_json(m.epoch)
    if name == "decision" and m.decision is not None:
        return nm.decision_to_json(m.decision)
    if name == "timeline":
        return {"items": nm.timeline_to_json(m.timeline)}
    if name.startswith("entry/"):
        return nm.entry_to_json(m.entries[name[len("entry/"):]])
    return nm.report_to_json(m.reports[name[len("report/"):]])


class SectionCache:
    """Encodings of one node's successive maps, section by section.

    Section values are immutable, so a section whose value object is the same as last time
    keeps its JSON, canonical text and fingerprint. ``versions``, ``sections`` and ``digest``
    then cost one pass over the section names instead of encoding the whole map, which
    anti-entropy does on every exchange. Results equal ``versions(m)``, ``nm.sections(m)``
    and ``nm.digest(m)``.
    """

    def __init__(self) -> None:
        self._items: Dict[str, Tuple[object, Any, str, List[Any]]] = {}
        self._last: Optional[Tuple[nm.NodeMap, Dict[str, Any], Dict[str, Any], str]] = None

    def _refresh(self, m: nm.NodeMap) -> Tuple[Dict[str, Any], Dict[str, Any], str]:
        if self._last is not None and self._last[0] is m:
            return self._last[1], self._last[2], self._last[3]
        objects: List[Tuple[str, object]] = [("roster", m.roster), ("epoch", m.epoch)]
        objects += [(f"entry/{sid}", e) for sid, e in m.entries.items()]
        objects += [(f"report/{sid}", rep) for sid, rep in m.reports.items()]
        if m.decision is not None:
            objects.append(("decision", m.decision))
        if m.timeline:
            objects.append(("timeline", m.timeline))
        items: Dict[str, Tuple[object, Any, str, List[Any]]] = {}
        for name, obj in objects:
            cached = self._items.get(name)
            if cached is None or cached[0] is not obj:
                value = _encode_section(m, name)
                text = nm.canonical_json(value)
                fp = hashlib.sha256(text.encode()).hexdigest()[:16]
                cached = (obj, value, text, [*_version_key(name, value), fp])
            items[name] = cached
        self._items = items
        sections = {name: it[1] for name, it in items.items()}
        vers = {name: it[3] for name, it in items.items()}
        # Same as nm.digest: the canonical text of {name: fingerprint}.
        text = nm.canonical_json({name: it[3][-1] for name, it in items.items()})
        digest = hashlib.sha256(text.encode()).hexdigest()[:32]
        self._last = (m, sections, vers, digest)
        return sections, vers, digest

    def sections(self, m: nm.NodeMap) -> Dict[str, Any]:
        return self._refresh(m)[0]

    def versions(self, m: nm.NodeMap) -> Dict[str, Any]:
        return self._refresh(m)[1]

    def digest(self, m: nm.NodeMap) -> str:
        return self._refresh(m)[2]


def newer_sections(m: nm.NodeMap, theirs: Mapping[str, Any],
                   cache: Optional[SectionCache] = None) -> Dict[str, Any]:
    """Sections of ``m`` that ``theirs`` lacks or holds in an older (or conflicting) value."""
    mine = versions(m) if cache is None else cache.versions(m)
    all_sections = nm.sections(m) if cache is None else cache.sections(m)
    return {name: all_sections[name] for name, version in mine.items()
            if _differs(name, version, theirs.get(name))[0]}


def wanted_sections(m: nm.NodeMap, theirs: Mapping[str, Any],
                    cache: Optional[SectionCache] = None) -> List[str]:
    """Names of sections that ``theirs`` holds and ``m`` lacks, or holds older/conflicting."""
    mine = versions(m) if cache is None else cache.versions(m)
    return sorted(name for name, version in theirs.items()
                  if name not in mine or _differs(name, mine[name], version)[1])


MAX_SECTION_NAME = 80


def parse_sections(values: Any) -> nm.NodeMap:
    """Parse a ``{section name: value}`` object received from a peer into a partial map.

    Sections absent from ``values`` stay at their empty defaults (version 0), which merge
    below anything real. Raises ``MapFormatError`` naming every bad path.
    """
    r = Reader()
    obj = r.obj(values, "$")
    roster = nm.Roster()
    epoch = nm.Epoch()
    entries: Dict[str, nm.Entry] = {}
    reports: Dict[str, nm.Report] = {}
    decision: Optional[nm.Decision] = None
    timeline: Tuple[nm.TimelineItem, ...] = ()
    for name, value in obj.items():
        path = f"$[{name!r}]"
        if len(name) > MAX_SECTION_NAME:
            r.problem(path, "section name too long")
        elif name == "roster":
            roster = nm.parse_roster(r, value, path)
        elif name == "epoch":
            epoch = nm.parse_epoch(r, value, path)
        elif name == "decision":
            decision = nm.parse_decision(r, value, path)
        elif name == "timeline":
            tl = r.obj(value, path)
            timeline = nm.parse_timeline(r, tl.get("items", []), f"{path}.items")
        elif name.startswith("entry/"):
            key = name[len("entry/"):]
            entries[key] = nm.parse_entry(r, value, path, key)
        elif name.startswith("report/"):
            key = name[len("report/"):]
            reports[key] = nm.parse_report(r, value, path, key)
        else:
            r.problem(path, "unknown section")
    r.raise_if_problems()
    return nm.NodeMap(roster=roster, epoch=epoch, entries=entries, reports=reports,
                      decision=decision, timeline=timeline)


def changed_sections(before: nm.NodeMap, after: nm.NodeMap) -> Dict[str, Any]:
    """Sections whose value differs between two maps (what to persist).

    Compares the section values (frozen dataclasses) and encodes only the ones that changed:
    encoding both whole maps on every change dominated the cost of a 50-supernode federation.
    """
    out: Dict[str, Any] = {}
    if before.roster != after.roster:
        out["roster"] = nm.roster_to_json(after.roster)
    if before.epoch != after.epoch:
        out["epoch"] = nm.epoch_to_json(after.epoch)
    for sid, e in after.entries.items():
        old_e = before.entries.get(sid)
        if old_e is not e and (old_e is None or nm.entry_to_json(old_e) != nm.entry_to_json(e)):
            out[f"entry/{sid}"] = nm.entry_to_json(e)
    for sid, rep in after.reports.items():
        old_r = before.reports.get(sid)
        if old_r is not rep and (old_r is None
                                 or nm.report_to_json(old_r) != nm.report_to_json(rep)):
            out[f"report/{sid}"] = nm.report_to_json(rep)
    if after.decision is not None and before.decision is not after.decision and (
            before.decision is None
            or nm.decision_to_json(before.decision) != nm.decision_to_json(after.decision)):
        out["decision"] = nm.decision_to_json(after.decision)
    if after.timeline and before.timeline != after.timeline:
        out["timeline"] = {"items": nm.timeline_to_json(after.timeline)}
    return out


def without_decision_noise(m: nm.NodeMap) -> nm.NodeMap:
    """``m`` without reports and timeline: the part of the map every node must agree on."""
    return replace(m, reports={}, timeline=())


__all__ = [
    "MapFormatError",
    "changed_sections",
    "merge",
    "newer_sections",
    "parse_sections",
    "versions",
    "wanted_sections",
]
