"""Messages between nodes: small immutable values with a strict JSON codec.

Every message is a JSON object ``{"kind": ..., ...}``. ``parse_message`` rejects anything that
does not follow the format exactly (unknown kind, unknown or missing key, wrong type, oversized
collections) with a ``ProtocolError`` that names the problem; nothing is guessed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

from esgf_nodemgr.core import nodemap as nm
from esgf_nodemgr.core.errors import MapFormatError, ProtocolError
from esgf_nodemgr.core.health import PROPS_STATUS
from esgf_nodemgr.core.membership import ANSWERS
from esgf_nodemgr.core.parse import Reader

MAX_ITEMS = 20_000


@dataclass(frozen=True)
class Observations:
    """An observer's link statuses for one round, sent to that round's leader."""

    round: int
    voting: bool
    links: Mapping[str, str]
    props: Mapping[str, str]
    #: Peers whose link is still up but whose last probe failed (one miss short of
    #: ``down_after``): not a vote against calling them down.
    suspect: Tuple[str, ...] = ()
    kind: str = field(default="observations", init=False)


@dataclass(frozen=True)
class Push:
    """Sections the sender holds (a decision, a changed entry, the epoch...)."""

    sections: Mapping[str, Any]
    kind: str = field(default="push", init=False)


@dataclass(frozen=True)
class Sync:
    """Anti-entropy, step 1: the sender's section versions."""

    versions: Mapping[str, Any]
    kind: str = field(default="sync", init=False)


@dataclass(frozen=True)
class SyncReply:
    """Anti-entropy, step 2: sections newer than the asker's, and the names it should send."""

    sections: Mapping[str, Any]
    want: Tuple[str, ...]
    kind: str = field(default="sync_reply", init=False)


@dataclass(frozen=True)
class Join:
    """A member asks to join (or re-join) the federation."""

    project: str
    standby: bool
    address: str
    port: int
    kind: str = field(default="join", init=False)


@dataclass(frozen=True)
class Leave:
    """A member asks to leave the federation."""

    kind: str = field(default="leave", init=False)


@dataclass(frozen=True)
class Reply:
    """A supernode's answer to ``join``/``leave`` (``of`` says which)."""

    of: str
    answer: str
    reason: str
    home: Optional[str] = None
    server: Optional[str] = None
    member_id: Optional[str] = None
    redirect: Optional[str] = None
    kind: str = field(default="reply", init=False)


@dataclass(frozen=True)
class ServedNode:
    hostname: str
    address: str
    port: int


@dataclass(frozen=True)
class Slice:
    """What a member needs of the map: the roster, the epoch, who serves it, whom it serves."""

    roster: Mapping[str, Any]
    epoch: Mapping[str, Any]
    home: Optional[str]
    server: Optional[str]
    #: Hostname of the server when it is a promoted standby (a member), else None.
    server_hostname: Optional[str]
    member_id: Optional[str]
    #: Members this (promoted standby) member must serve.
    serve: Tuple[ServedNode, ...] = ()
    kind: str = field(default="slice", init=False)


@dataclass(frozen=True)
class MemberHealth:
    """A promoted standby relays the health of the members it serves to its own server."""

    health: Mapping[str, str]
    kind: str = field(default="member_health", init=False)


Message = Union[Observations, Push, Sync, SyncReply, Join, Leave, Reply, Slice, MemberHealth]


def message_to_json(msg: Message) -> Dict[str, Any]:
    """The JSON object for ``msg``."""
    if isinstance(msg, Observations):
        obs: Dict[str, Any] = {"kind": msg.kind, "round": msg.round, "voting": msg.voting,
                               "links": dict(msg.links), "props": dict(msg.props)}
        if msg.suspect:
            obs["suspect"] = list(msg.suspect)
        return obs
    if isinstance(msg, Push):
        return {"kind": msg.kind, "sections": dict(msg.sections)}
    if isinstance(msg, Sync):
        return {"kind": msg.kind, "versions": dict(msg.versions)}
    if isinstance(msg, SyncReply):
        return {"kind": msg.kind, "sections": dict(msg.sections), "want": list(msg.want)}
    if isinstance(msg, Join):
        return {"kind": msg.kind, "project": msg.project, "standby": msg.standby,
                "address": msg.address, "port": msg.port}
    if isinstance(msg, Leave):
        return {"kind": msg.kind}
    if isinstance(msg, Reply):
        out: Dict[str, Any] = {"kind": msg.kind, "of": msg.of, "answer": msg.answer,
                               "reason": msg.reason}
        for key in ("home", "server", "member_id", "redirect"):
            if getattr(msg, key) is not None:
                out[key] = getattr(msg, key)
        return out
    if isinstance(msg, Slice):
        return {"kind": msg.kind, "roster": dict(msg.roster), "epoch": dict(msg.epoch),
                "home": msg.home, "server": msg.server, "server_hostname": msg.server_hostname,
                "member_id": msg.member_id,
                "serve": [{"hostname": s.hostname, "address": s.address, "port": s.port}
                          for s in msg.serve]}
    return {"kind": msg.kind, "health": dict(msg.health)}


def _opt_str(r: Reader, o: Mapping[str, Any], key: str, path: str) -> Optional[str]:
    value = o.get(key)
    return None if value is None else r.string(value, f"{path}.{key}")


def _bounded(r: Reader, value: Any, path: str) -> Mapping[str, Any]:
    obj = r.obj(value, path)
    if len(obj) > MAX_ITEMS:
        r.problem(path, f"more than {MAX_ITEMS} items")
        return {}
    return obj


#: The shape ``merge.versions`` gives each section: version parts, then a fingerprint.
_VERSION_SHAPES: Dict[str, Tuple[type, ...]] = {"decision": (int, str, str),
                                                "timeline": (int, str, str)}
_DEFAULT_SHAPE: Tuple[type, ...] = (int, str)


def parse_message(value: Any) -> Message:
    """Parse a message object; raise ``ProtocolError`` naming every problem."""
    r = Reader()
    o = r.obj(value, "$")
    kind = o.get("kind")
    msg: Optional[Message] = None
    if kind == "observations":
        r.keys(o, "$", ["kind", "round", "voting", "links", "props"], ["suspect"])
        links = _bounded(r, o.get("links"), "$.links")
        props = _bounded(r, o.get("props"), "$.props")
        suspect = r.array(o.get("suspect", []), "$.suspect")
        if len(suspect) > MAX_ITEMS:
            r.problem("$.suspect", f"more than {MAX_ITEMS} items")
            suspect = []
        msg = Observations(
            round=r.integer(o.get("round"), "$.round", minimum=0),
            voting=r.boolean(o.get("voting"), "$.voting"),
            links={k: r.choice(v, f"$.links[{k!r}]", nm.LINK_STATUS) for k, v in links.items()},
            props={k: r.choice(v, f"$.props[{k!r}]", PROPS_STATUS) for k, v in props.items()},
            suspect=tuple(r.string(x, f"$.suspect[{i}]") for i, x in enumerate(suspect)))
    elif kind == "push":
        r.keys(o, "$", ["kind", "sections"])
        msg = Push(sections=_bounded(r, o.get("sections"), "$.sections"))
    elif kind == "sync":
        r.keys(o, "$", ["kind", "versions"])
        versions = _bounded(r, o.get("versions"), "$.versions")
        for k, v in versions.items():
            items = r.array(v, f"$.versions[{k!r}]")
            # The shape ``merge.versions`` gives each section: versions are compared with ours,
            # and an integer compared with a string would be our crash, not their error.
            shape = _VERSION_SHAPES.get(k, _DEFAULT_SHAPE)
            if len(items) != len(shape) or not all(
                    isinstance(x, t) and not isinstance(x, bool) for x, t in zip(items, shape)):
                r.problem(f"$.versions[{k!r}]", "expected [" + ", ".join(
                    "integer" if t is int else "string" for t in shape) + "]")
        msg = Sync(versions=versions)
    elif kind == "sync_reply":
        r.keys(o, "$", ["kind", "sections", "want"])
        want = r.array(o.get("want"), "$.want")
        msg = SyncReply(sections=_bounded(r, o.get("sections"), "$.sections"),
                        want=tuple(r.string(w, f"$.want[{i}]") for i, w in enumerate(want)))
    elif kind == "join":
        r.keys(o, "$", ["kind", "project", "standby", "address", "port"])
        msg = Join(project=r.string(o.get("project"), "$.project", max_len=128),
                   standby=r.boolean(o.get("standby"), "$.standby"),
                   address=r.string(o.get("address"), "$.address", max_len=nm.MAX_HOSTNAME),
                   port=r.integer(o.get("port"), "$.port", minimum=1, maximum=65535))
    elif kind == "leave":
        r.keys(o, "$", ["kind"])
        msg = Leave()
    elif kind == "reply":
        r.keys(o, "$", ["kind", "of", "answer", "reason"],
               ["home", "server", "member_id", "redirect"])
        msg = Reply(of=r.choice(o.get("of"), "$.of", ("join", "leave")),
                    answer=r.choice(o.get("answer"), "$.answer", ANSWERS),
                    reason=r.string(o.get("reason"), "$.reason", allow_empty=True, max_len=1024),
                    home=_opt_str(r, o, "home", "$"), server=_opt_str(r, o, "server", "$"),
                    member_id=_opt_str(r, o, "member_id", "$"),
                    redirect=_opt_str(r, o, "redirect", "$"))
    elif kind == "slice":
        r.keys(o, "$", ["kind", "roster", "epoch", "home", "server", "server_hostname",
                        "member_id", "serve"])
        roster = nm.parse_roster(r, o.get("roster"), "$.roster")
        nm.parse_epoch(r, o.get("epoch"), "$.epoch")
        serve: List[ServedNode] = []
        for i, s in enumerate(r.array(o.get("serve"), "$.serve")):
            so = r.obj(s, f"$.serve[{i}]")
            r.keys(so, f"$.serve[{i}]", ["hostname", "address", "port"])
            serve.append(ServedNode(
                hostname=r.string(so.get("hostname"), f"$.serve[{i}].hostname"),
                address=r.string(so.get("address"), f"$.serve[{i}].address"),
                port=r.integer(so.get("port"), f"$.serve[{i}].port", minimum=1,
                               maximum=65535)))
        msg = Slice(roster=nm.roster_to_json(roster), epoch=dict(r.obj(o.get("epoch"), "$.epoch")),
                    home=_opt_str(r, o, "home", "$"), server=_opt_str(r, o, "server", "$"),
                    server_hostname=_opt_str(r, o, "server_hostname", "$"),
                    member_id=_opt_str(r, o, "member_id", "$"), serve=tuple(serve))
    elif kind == "member_health":
        r.keys(o, "$", ["kind", "health"])
        health = _bounded(r, o.get("health"), "$.health")
        msg = MemberHealth(health={k: r.choice(v, f"$.health[{k!r}]", nm.MEMBER_HEALTH)
                                   for k, v in health.items()})
    else:
        r.problem("$.kind", f"unknown message kind {kind!r}")
    try:
        r.raise_if_problems()
    except MapFormatError as exc:
        raise ProtocolError(str(exc)) from exc
    assert msg is not None
    return msg
