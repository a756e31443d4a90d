"""HTTP routes of the agent: node-to-node (mTLS), public read-only, prototype paths, admin.

Handlers check everything they can before the loop sees anything (size, JSON, message format,
sender identity), so a bad request is refused with a 4xx that says what was wrong and changes
no state. What passes becomes one event for the loop; its ``Answer`` effect becomes the
response.

=========================================  ======  ============================================
path                                        auth    what
=========================================  ======  ============================================
POST /esgf-nm/v1/message                    node    a protocol message ``{sender, message}``
GET  /esgf-nm/v1/probe?from=&round=         node    health check: map digest, props status
GET  /esgf-nm/v1/status                     public  the status document
GET  /esgf-nm/registration.xml              public  ESGF registry file
GET  /esgf-nm/node-props.json               public  this node's properties (+ metrics)
GET  /esgf-nm/metrics.json                  public  this node's metrics
GET  /esgf-nm/health-check-api              public  prototype: properties, flat
GET  /esgf-nm/ (+ /esgf-nm/static/...)      public  the status page (``statuspage.py``)
GET  /metrics                               config  Prometheus text (``prom.py``); public
                                                    unless ``http.metrics_auth: node``
GET|POST /esgf-nm/api?action=...            node    prototype actions (see ``_legacy_api``)
/v1/... on the Unix socket                  admin   CLI and Ansible (see ``admin_routes``)
=========================================  ======  ============================================
"""

from __future__ import annotations

import concurrent.futures
import json
import logging
import math
from typing import Any, Dict, List, Optional, Set, Tuple

from esgf_nodemgr.core import messages as msgs
from esgf_nodemgr.core import nodemap as nm
from esgf_nodemgr.core.errors import MapFormatError, ProtocolError
from esgf_nodemgr.core.events import (
    AdminJoin,
    AdminLeave,
    AdminSeedEpoch,
    Answer,
    Effect,
    Probed,
    Received,
)
from esgf_nodemgr.core.member import MemberCore
from esgf_nodemgr.core.supernode import SupernodeCore
from esgf_nodemgr.runtime import prom, statuspage
from esgf_nodemgr.runtime.agent import Agent, Busy, install_roster_event
from esgf_nodemgr.runtime.httpserver import HTTPError, Request, Response, Route, require_sender
from esgf_nodemgr.runtime.status import map_json

logger = logging.getLogger(__name__)

#: HTTP status for each answer status of the core.
_STATUS = {"ok": 200, "unchanged": 200, "ignored": 409, "refused": 403, "deny": 200,
           "delayed": 200, "error": 500}


def _answer(effects: Optional[List[Effect]]) -> Answer:
    for eff in effects or []:
        if isinstance(eff, Answer):
            return eff
    return Answer("ok", "done")


def _run(agent: Agent, event: Any) -> Answer:
    try:
        return _answer(agent.submit(event))
    except Busy as exc:
        raise HTTPError(503, str(exc)) from exc
    except concurrent.futures.TimeoutError as exc:
        raise HTTPError(503, "the agent did not answer in time") from exc


def _respond(answer: Answer) -> Response:
    body: Dict[str, Any] = {"status": answer.status, "detail": answer.detail}
    if answer.data:
        body["data"] = dict(answer.data)
    return Response.json(body, status=_STATUS.get(answer.status, 200))


def node_routes(agent: Agent) -> List[Route]:
    """Routes of the HTTPS server (node-to-node and public)."""

    def message(req: Request) -> Response:
        agent.telemetry.bytes_received(len(req.body))
        try:
            parsed, sender = _parse_message(req)
        except HTTPError:
            agent.telemetry.error("bad_request")
            raise
        agent.telemetry.message_received(parsed.kind)
        return _respond(_run(agent, Received(sender=sender, message=parsed,
                                             now=agent.clock())))

    def probe(req: Request) -> Response:
        claimed = req.query.get("from")
        if claimed is None:
            raise HTTPError(400, "query parameter 'from' is required")
        sender = require_sender(req, claimed)
        try:
            agent.submit(Probed(sender=sender, now=agent.clock()), wait=False)
        except Busy as exc:
            raise HTTPError(503, str(exc)) from exc
        return Response.json(agent.probe_answer())

    def status(_req: Request) -> Response:
        return Response.json(agent.status())

    def registration(_req: Request) -> Response:
        data = agent.registration_xml()
        if not data:
            raise HTTPError(404, "registration.xml is not available yet")
        return Response(status=200, body=data, content_type="application/xml")

    def node_props(_req: Request) -> Response:
        return Response.json(agent.props_answer())

    def metrics(_req: Request) -> Response:
        return Response.json(agent.metrics_answer())

    def health_check(_req: Request) -> Response:
        props = agent.props_answer().get("properties") or {}
        flat: Dict[str, Any] = dict(props.get("properties", {}))
        flat["hostname"] = agent.cfg.hostname
        flat["status"] = agent.props_status()
        return Response.json(flat)

    def legacy_api(req: Request) -> Response:
        return _legacy_api(agent, req)

    def properties(req: Request) -> Response:
        if req.peer is None:
            raise HTTPError(401, "a client certificate from the federation CA is required")
        return Response.json(agent.props_bundle())

    def prometheus(_req: Request) -> Response:
        return Response(status=200, body=prom.render_agent(agent).encode("utf-8"),
                        content_type=prom.CONTENT_TYPE)

    return [
        Route("POST", "/esgf-nm/v1/message", message, auth="node"),
        Route("GET", "/esgf-nm/v1/probe", probe, auth="node"),
        Route("GET", "/esgf-nm/v1/properties", properties, auth="node"),
        Route("GET", "/esgf-nm/v1/status", status, auth="public"),
        Route("GET", "/esgf-nm/registration.xml", registration, auth="public"),
        Route("GET", "/esgf-nm/node-props.json", node_props, auth="public"),
        Route("GET", "/esgf-nm/metrics.json", metrics, auth="public"),
        Route("GET", "/esgf-nm/health-check-api", health_check, auth="public"),
        Route("GET", "/esgf-nm/api", legacy_api, auth="node"),
        Route("POST", "/esgf-nm/api", legacy_api, auth="node"),
        Route("GET", "/metrics", prometheus, auth=agent.cfg.metrics_auth),
        *statuspage.routes(),
    ]


def _parse_message(req: Request) -> Tuple[msgs.Message, str]:
    """The message of ``POST /esgf-nm/v1/message`` and its proven sender, or ``HTTPError``."""
    doc = req.json()
    if not isinstance(doc, dict) or set(doc) != {"sender", "message"}:
        raise HTTPError(400, "expected an object with exactly the keys sender and message")
    sender = require_sender(req, doc["sender"])
    try:
        parsed = msgs.parse_message(doc["message"])
    except ProtocolError as exc:
        raise HTTPError(400, f"bad message: {exc}") from exc
    if isinstance(parsed, (msgs.Push, msgs.SyncReply)):
        _check_sections(parsed.sections)
    return parsed, sender


def _check_sections(sections: Any) -> None:
    # Parse before the loop sees it: a malformed section is the sender's fault (400), and
    # rejecting it here guarantees it changed nothing.
    from esgf_nodemgr.core import merge

    try:
        merge.parse_sections(sections)
    except MapFormatError as exc:
        raise HTTPError(400, f"bad sections: {exc}") from exc


def _legacy_api(agent: Agent, req: Request) -> Response:
    """The prototype's ``/esgf-nm/api?action=...``, kept for existing clients.

    The sender is always the certificate's identity (the prototype trusted ``from``; if given,
    it must match).
    """
    action = req.query.get("action", "")
    if req.peer is None:
        raise HTTPError(401, "a client certificate from the federation CA is required")
    sender = req.peer
    if "from" in req.query:
        sender = require_sender(req, req.query["from"])
    now = agent.clock()
    if action == "sync_node_map_file":
        from esgf_nodemgr.core import legacy

        core = agent.core
        if not isinstance(core, SupernodeCore):
            raise HTTPError(404, "members do not hold the node map")
        return Response.json(legacy.to_legacy(core.map))
    if action == "add_member":
        project = req.query.get("project", "")
        standby = req.query.get("standby", "false").lower() in ("1", "true", "yes")
        member = _member_endpoint(agent, sender)
        message: msgs.Message = msgs.Join(project=project, standby=standby,
                                          address=member[0], port=member[1])
        return _respond(_run(agent, Received(sender=sender, message=message, now=now)))
    if action == "remove_member":
        return _respond(_run(agent, Received(sender=sender, message=msgs.Leave(), now=now)))
    if action == "node_map_update":
        if req.method != "POST":
            raise HTTPError(405, "node_map_update needs POST")
        doc = req.json()
        from esgf_nodemgr.core import legacy

        try:
            incoming = legacy.load_any(doc)
        except MapFormatError as exc:
            raise HTTPError(400, f"bad map: {exc}") from exc
        sections = nm.sections(incoming)
        return _respond(_run(agent, Received(sender=sender, message=msgs.Push(sections),
                                             now=now)))
    if action == "sn_init":
        raw = req.query.get("epoch") or req.query.get("timestamp")
        try:
            value = float(raw or "")
        except ValueError as exc:
            raise HTTPError(400, "sn_init needs a numeric epoch (query 'epoch')") from exc
        epoch = {"version": 1, "value": value}
        return _respond(_run(agent, Received(sender=sender,
                                             message=msgs.Push({"epoch": epoch}), now=now)))
    raise HTTPError(400, f"unknown action {action!r} (known: sync_node_map_file, add_member, "
                         f"remove_member, node_map_update, sn_init)")


def _member_endpoint(agent: Agent, hostname: str) -> Tuple[str, int]:
    return (hostname, agent.cfg.port)


def admin_routes(agent: Agent) -> List[Route]:
    """Routes of the local admin API (Unix socket, mode 0600): CLI and Ansible modules."""

    def status(_req: Request) -> Response:
        return Response.json(agent.status())

    def get_map(req: Request) -> Response:
        if req.query.get("format") == "legacy":
            from esgf_nodemgr.core import legacy

            core = agent.core
            if not isinstance(core, SupernodeCore):
                raise HTTPError(404, "members do not hold the node map")
            return Response.json(legacy.to_legacy(core.map))
        return Response.json(map_json(agent.core))

    def join(req: Request) -> Response:
        doc = _object(req, {"project"}, {"standby"})
        project = doc["project"]
        standby = doc.get("standby", False)
        if not isinstance(project, str) or not project:
            raise HTTPError(400, "project must be a non-empty string")
        if not isinstance(standby, bool):
            raise HTTPError(400, "standby must be true or false")
        if not isinstance(agent.core, MemberCore):
            raise HTTPError(409, "this node is a supernode; only members join")
        return _respond(_run(agent, AdminJoin(project=project, standby=standby,
                                              now=agent.clock())))

    def leave(_req: Request) -> Response:
        if not isinstance(agent.core, MemberCore):
            raise HTTPError(409, "this node is a supernode; only members leave")
        return _respond(_run(agent, AdminLeave(now=agent.clock())))

    def roster(req: Request) -> Response:
        doc = req.json()
        if not isinstance(doc, dict):
            raise HTTPError(400, "expected a JSON object: {\"roster\": {...}} or a whole map")
        try:
            event = install_roster_event(doc, agent.clock())
        except MapFormatError as exc:
            raise HTTPError(400, f"bad map: {exc}") from exc
        return _respond(_run(agent, event))

    def epoch(_req: Request) -> Response:
        st = agent.status()
        return Response.json({"epoch": st.get("epoch"), "round": st.get("round"),
                              "round_s": st.get("round_s")})

    def seed(req: Request) -> Response:
        doc = _object(req, set(), {"value", "force"}) if req.body else {}
        value = doc.get("value", agent.clock())
        force = doc.get("force", False)
        if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
            raise HTTPError(400, "value must be a positive number (seconds since 1970)")
        if not isinstance(force, bool):
            raise HTTPError(400, "force must be true or false")
        if not isinstance(agent.core, SupernodeCore):
            raise HTTPError(409, "only a supernode seeds the epoch")
        answer = _run(agent, AdminSeedEpoch(value=float(value), now=agent.clock(),
                                             force=force))
        epoch_value = answer.data.get("epoch")
        if isinstance(epoch_value, (int, float)):
            round_s = agent.cfg.core.round_s
            data = dict(answer.data, round_s=round_s,
                        round=max(-1, math.floor((agent.clock() - epoch_value) / round_s)))
            answer = Answer(answer.status, answer.detail, data)
        return _respond(answer)

    def journal(req: Request) -> Response:
        try:
            limit = int(req.query.get("limit", "100"))
            # Without ``after``: the newest ``limit`` entries.
            after = int(req.query.get("after", str(max(0, agent.store.last_journal_seq()
                                                         - limit))))
        except ValueError as exc:
            raise HTTPError(400, "after and limit must be integers") from exc
        if not 1 <= limit <= 1000 or after < 0:
            raise HTTPError(400, "limit must be 1..1000 and after >= 0")
        rows = agent.store.journal(after_seq=after, limit=limit)
        return Response.json({"entries": [
            {"seq": seq, "at": e.at, "origin": e.origin, "summary": e.summary}
            for seq, e in rows]})

    def check(_req: Request) -> Response:
        return Response.json(agent_check(agent))

    return [
        Route("GET", "/v1/status", status, auth="admin"),
        Route("GET", "/v1/map", get_map, auth="admin"),
        Route("POST", "/v1/join", join, auth="admin"),
        Route("POST", "/v1/leave", leave, auth="admin"),
        Route("POST", "/v1/roster", roster, auth="admin", max_body=8 << 20),
        Route("GET", "/v1/epoch", epoch, auth="admin"),
        Route("POST", "/v1/epoch/seed", seed, auth="admin"),
        Route("GET", "/v1/journal", journal, auth="admin"),
        Route("GET", "/v1/check", check, auth="admin"),
    ]


def _object(req: Request, required: Set[str], optional: Set[str]) -> Dict[str, Any]:
    doc = req.json()
    if not isinstance(doc, dict):
        raise HTTPError(400, "expected a JSON object")
    missing = sorted(required - set(doc))
    unknown = sorted(set(doc) - required - optional)
    if missing:
        raise HTTPError(400, f"missing key(s): {', '.join(missing)}")
    if unknown:
        raise HTTPError(400, f"unknown key(s): {', '.join(unknown)}")
    return doc


def agent_check(agent: Agent) -> Dict[str, Any]:
    """The self-check behind ``esgf-nm check``: one entry per aspect, ``ok`` overall."""
    st = agent.status()
    checks: List[Dict[str, Any]] = []
    checks.append({"name": "agent", "ok": True, "detail": f"running, pid {st['agent']['pid']}"})
    props = st.get("properties", {})
    checks.append({"name": "esgf-files", "ok": props.get("status") != "ISSUE",
                   "detail": props.get("reason") or props.get("status")})
    if agent.cfg.metrics_enabled:
        m = agent.metrics_answer()
        checks.append({"name": "database", "ok": bool(m.get("available")),
                       "detail": m.get("reason") or "metrics collected"})
    else:
        checks.append({"name": "database", "ok": True, "detail": "metrics disabled"})
    if st.get("role") == "supernode":
        checks.append({"name": "epoch", "ok": st.get("epoch") is not None,
                       "detail": "seeded" if st.get("epoch") is not None else "not seeded"})
        me = next((s for s in st.get("supernodes", []) if s.get("me")), None)
        checks.append({"name": "roster", "ok": me is not None,
                       "detail": "in the roster" if me else "this host is not in the roster"})
    else:
        checks.append({"name": "membership", "ok": bool(st.get("joined")),
                       "detail": f"served by {st.get('server_hostname')}" if st.get("joined")
                       else "not joined"})
    return {"ok": all(c["ok"] for c in checks), "checks": checks}


def dumps(doc: Any) -> str:
    return json.dumps(doc, indent=2, sort_keys=True)
