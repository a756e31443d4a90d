# Copyright (c) 2026, ESGF node manager maintainers
# Apache License 2.0 (see LICENSE)
"""Validating the federation an inventory describes (the pure part of ``inventory_check``).

Input: the hosts of the ``supernodes`` and ``members`` groups as plain dicts. Output: a list
of problems, one sentence each, naming the host and the variable. No IO, no Ansible objects:
tests feed tables of good and bad inventories straight in.
"""

from __future__ import annotations

import fnmatch

DEFAULT_PORT = 7443
#: Host variables with our prefix that the inventory itself uses (docs/ansible-design.md).
KNOWN_VARS = ("esgf_nm_address", "esgf_nm_port")
VAR_PREFIX = "esgf_nm_"
MAX_PORT = 65535


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def port_problem(value):
    """Why ``value`` is not a usable TCP port, or None. Accepts ints and digit strings."""
    if _is_int(value):
        port = value
    elif isinstance(value, str) and value.strip().isdigit():
        port = int(value.strip())
    else:
        return f"must be a number from 1 to {MAX_PORT}, got {value!r}"
    if not 1 <= port <= MAX_PORT:
        return f"must be from 1 to {MAX_PORT}, got {port}"
    return None


def _var_names(host):
    names = host.get("vars") or []
    if isinstance(names, dict):
        names = list(names)
    return [str(n) for n in names]


def _allowed(name, allowed):
    return name in KNOWN_VARS or any(fnmatch.fnmatchcase(name, pattern) for pattern in allowed)


def _suggest(name, candidates):
    """The closest known name when ``name`` is one edit away from it (a typo), else None."""
    best = None
    for cand in candidates:
        if "*" in cand or "?" in cand or "[" in cand:
            continue
        if _edit_distance_at_most(name, cand, 2) and (best is None or abs(len(cand) - len(name)) < abs(len(best) - len(name))):
            best = cand
    return best


def _edit_distance_at_most(a, b, limit):
    """Whether ``a`` and ``b`` are at most ``limit`` edits apart (a swap of neighbours is one)."""
    if abs(len(a) - len(b)) > limit:
        return False
    before = None
    prev = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        cur = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
            if before is not None and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                cur[j] = min(cur[j], before[j - 2] + 1)
        before, prev = prev, cur
    return prev[-1] <= limit


def normalize_host(host, group, default_port):
    """``host`` with ``address`` and ``port`` defaulted (address: the name; port: default)."""
    name = host.get("name")
    address = host.get("address")
    port = host.get("port")
    out = {
        "name": name,
        "group": group,
        "address": address if address not in (None, "") else name,
        "port": port if port not in (None, "") else default_port,
    }
    if group == "members":
        out["project"] = host.get("project")
        out["standby"] = host.get("standby", False) if host.get("standby") is not None else False
    return out


def check_inventory(supernodes, members, allowed_vars=(), default_port=DEFAULT_PORT):
    """Every problem of the federation (a list of sentences; empty when it is fine).

    ``supernodes`` and ``members`` are lists of dicts with ``name`` and optionally
    ``address``, ``port``, ``vars`` (names of the host's variables) and, for members,
    ``project`` and ``standby``. ``allowed_vars`` are names (or shell patterns such as
    ``esgf_nm_agent_*``) of ``esgf_nm_`` variables that may be set besides the built-in ones.
    """
    problems = []
    supernodes = list(supernodes or [])
    members = list(members or [])
    allowed = list(allowed_vars or [])
    if not supernodes:
        problems.append("the supernodes group is empty: a federation needs at least one supernode")

    groups_of = {}
    for group, hosts in (("supernodes", supernodes), ("members", members)):
        seen = set()
        for i, host in enumerate(hosts):
            name = host.get("name")
            if not isinstance(name, str) or not name.strip():
                problems.append(f"{group} #{i + 1}: empty inventory name")
                continue
            if name in seen:
                problems.append(f"{name}: {group} is listed twice in the group")
                continue
            seen.add(name)
            groups_of.setdefault(name, []).append(group)
    for name, groups in sorted(groups_of.items()):
        if len(groups) > 1:
            problems.append(f"{name}: in both the supernodes and the members group (a node is one or the other)")

    endpoints = {}
    for group, hosts in (("supernodes", supernodes), ("members", members)):
        for host in hosts:
            name = host.get("name")
            if not isinstance(name, str) or not name.strip():
                continue
            h = normalize_host(host, group, default_port)
            problems.extend(_host_problems(h, host, allowed))
            if port_problem(h["port"]) is None and isinstance(h["address"], str):
                key = f"{h['address']}:{int(h['port'])}"
                endpoints.setdefault(key, [])
                if name not in endpoints[key]:
                    endpoints[key].append(name)
    for key, names in sorted(endpoints.items()):
        if len(names) > 1:
            problems.append(f"{', '.join(names)}: the same address and port ({key}) for {len(names)} hosts: "
                            "each agent needs its own")
    return problems


def _host_problems(h, raw, allowed):
    name = h["name"]
    out = []
    address = h["address"]
    if not isinstance(address, str) or not address.strip() or any(c.isspace() for c in address):
        out.append(f"{name}: esgf_nm_address must be a host name or IP address without spaces, got {address!r}")
    why = port_problem(h["port"])
    if why:
        out.append(f"{name}: esgf_nm_port {why}")
    if h["group"] == "members":
        project = h.get("project")
        if project is None or (isinstance(project, str) and not project.strip()):
            out.append(f"{name}: member without a project (set the host variable project)")
        elif not isinstance(project, str):
            out.append(f"{name}: project must be a string, got {project!r}")
        standby = raw.get("standby")
        if standby is not None and not isinstance(standby, bool):
            out.append(f"{name}: standby must be true or false (a boolean), got {standby!r} ({type(standby).__name__})")
    candidates = list(KNOWN_VARS) + allowed
    for var in sorted(set(_var_names(raw))):
        if not var.startswith(VAR_PREFIX) or _allowed(var, allowed):
            continue
        hint = _suggest(var, candidates)
        out.append("{}: unknown variable {}{}".format(name, var, f" (did you mean {hint}?)" if hint else ""))
    return out


def summarize(supernodes, members, default_port=DEFAULT_PORT):
    """Counts for the report: supernodes, members, standby members, members per project."""
    projects = {}
    standby = 0
    for host in members or []:
        h = normalize_host(host, "members", default_port)
        if isinstance(h.get("project"), str) and h["project"]:
            projects[h["project"]] = projects.get(h["project"], 0) + 1
        if h.get("standby") is True:
            standby += 1
    return {
        "supernodes": len(supernodes or []),
        "members": len(members or []),
        "standby": standby,
        "projects": projects,
        "bootstrap_order": [h.get("name") for h in supernodes or []],
    }
