/* ESGF node manager status page: reads v1/status every round or so and draws it.
 *
 * No framework and no build step. Everything from the status document goes into the page
 * through textContent / setAttribute (never innerHTML), so hostnames cannot inject markup.
 * Health is always written out in words next to its colour.
 */
"use strict";

(function () {
  const STATUS_URL = "v1/status";
  const FETCH_TIMEOUT_MS = 4000;
  const MIN_REFRESH_MS = 1000;
  const MAX_REFRESH_MS = 10000;
  const DOWN = new Set(["bad", "unreachable"]);
  const SVG_NS = "http://www.w3.org/2000/svg";
  // Above this many supernodes the graph switches to small nodes with radial labels.
  const DENSE = 8;
  const HEALTH_WORD = {
    good: "up", unhealthy: "unhealthy", bad: "DOWN (properties lapsed)",
    unreachable: "DOWN (unreachable)", new: "no decision yet",
  };
  const MEMBER_WORD = { good: "up", unreachable: "UNREACHABLE", new: "not checked yet" };

  let refreshMs = 2000;
  let lastKey = "";
  let lastOk = null;
  let lastDoc = null;
  let failures = 0;

  // -- small DOM helpers ---------------------------------------------------------------------
  function el(tag, attrs, children) {
    const node = document.createElement(tag);
    setAttrs(node, attrs);
    append(node, children);
    return node;
  }
  function svg(tag, attrs, children) {
    const node = document.createElementNS(SVG_NS, tag);
    setAttrs(node, attrs);
    append(node, children);
    return node;
  }
  function setAttrs(node, attrs) {
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "text") node.textContent = String(v);
      else node.setAttribute(k, String(v));
    }
  }
  function append(node, children) {
    for (const c of [].concat(children === undefined ? [] : children)) {
      if (c === null || c === undefined || c === false) continue;
      node.append(typeof c === "string" ? document.createTextNode(c) : c);
    }
  }
  function byId(id) { return document.getElementById(id); }
  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }
  function plural(n, one, many) { return n + " " + (n === 1 ? one : (many || one + "s")); }
  function healthClass(h) { return DOWN.has(h) ? "down" : (h in HEALTH_WORD ? h : "new"); }
  function pill(cls, word) { return el("span", { class: "pill " + cls, text: word }); }
  function snPill(h) { return pill(healthClass(h), HEALTH_WORD[h] || h); }
  function memberPill(h) { return pill(h === "good" ? "good" : (h === "unreachable" ? "unreachable" : "new"), MEMBER_WORD[h] || h); }
  function tag(cls, text) { return el("span", { class: "tag " + cls, text: text }); }
  function fmtMs(ms) {
    if (typeof ms !== "number") return "no measurement yet";
    return ms < 10 ? ms.toFixed(1) + " ms" : Math.round(ms) + " ms";
  }
  function fmtTime(t) {
    if (typeof t !== "number") return "—";
    return new Date(t * 1000).toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
  }
  function clock(d) { return d.toTimeString().slice(0, 8); }
  function shortNames(hosts) {
    // First DNS label when that is unambiguous, else the full name.
    const first = hosts.map((h) => String(h).split(".")[0]);
    const seen = {};
    first.forEach((f) => { seen[f] = (seen[f] || 0) + 1; });
    const out = {};
    hosts.forEach((h, i) => { out[h] = seen[first[i]] > 1 ? String(h) : first[i]; });
    return out;
  }
  function truncate(s, n) { return s.length > n ? s.slice(0, n - 1) + "…" : s; }
  function names(list, max) {
    const shown = list.slice(0, max).map((s) => s.hostname).join(", ");
    return list.length > max ? shown + " and " + (list.length - max) + " more" : shown;
  }

  // -- the federation as a supernode sees it -------------------------------------------------
  function assess(doc) {
    const sns = doc.supernodes || [];
    const members = doc.members || [];
    const links = doc.links || [];
    const down = sns.filter((s) => DOWN.has(s.health));
    const unhealthy = sns.filter((s) => s.health === "unhealthy");
    const undecided = sns.filter((s) => s.health === "new");
    const linksDown = links.filter((l) => l.status === "down");
    const unverified = links.filter((l) => l.status !== "down" && l.status !== "up");
    const adopted = members.filter((m) => m.adopted);
    const unserved = members.filter((m) => m.server === null || m.server === undefined);
    const memDown = members.filter((m) => m.health === "unreachable");
    const problems = [];
    if (down.length) {
      problems.push(plural(down.length, "supernode") + " down (" + names(down, 5) + ")");
    }
    if (unserved.length) problems.push(plural(unserved.length, "member") + " UNSERVED");
    if (adopted.length) problems.push(plural(adopted.length, "member") + " adopted");
    if (unhealthy.length) {
      problems.push(plural(unhealthy.length, "supernode") + " unhealthy (" + names(unhealthy, 5) + ")");
    }
    if (linksDown.length) problems.push(plural(linksDown.length, "link") + " down");
    if (unverified.length) problems.push(plural(unverified.length, "link") + " not verified yet");
    if (memDown.length) problems.push(plural(memDown.length, "member") + " unreachable");
    if (doc.epoch === null || doc.epoch === undefined) {
      return { state: "unknown", word: "NOT STARTED", text: "the federation's epoch is not seeded yet" };
    }
    if (down.length || unserved.length || linksDown.length || memDown.length) {
      return { state: "degraded", word: "DEGRADED", text: problems.join(", ") };
    }
    if (problems.length) return { state: "warning", word: "WARNING", text: problems.join(", ") };
    if (undecided.length === sns.length && sns.length > 1) {
      return { state: "unknown", word: "STARTING", text: "no health decision yet" };
    }
    return {
      state: "healthy", word: "HEALTHY",
      text: plural(sns.length, "supernode") + " up, " + plural(links.length, "link") + " up, " +
        plural(members.length, "member") + " served",
    };
  }

  function assessMember(doc) {
    if (!doc.joined) {
      return { state: "warning", word: "NOT JOINED", text: "state: " + (doc.state || "unknown") };
    }
    const home = rosterHost(doc, doc.home);
    if (!doc.server_hostname) {
      return { state: "degraded", word: "UNSERVED", text: "joined, but no node serves this member now (home " + home + ")" };
    }
    if (doc.server !== doc.home) {
      return { state: "warning", word: "ADOPTED", text: "served by " + doc.server_hostname + " while its home " + home + " is down" };
    }
    return { state: "healthy", word: "JOINED", text: "served by its home supernode " + doc.server_hostname };
  }
  function rosterHost(doc, id) {
    const s = ((doc.roster || {}).supernodes || []).find((x) => x.id === id);
    return s ? s.hostname : (id || "—");
  }

  function showBanner(verdict, stale) {
    const b = byId("banner");
    b.className = "banner state-" + (stale ? "unknown" : verdict.state);
    clear(b);
    append(b, [el("span", { class: "banner-word", text: stale ? "STALE" : verdict.word }), " ",
      el("span", { class: "banner-text", text: (stale ? "last known: " + verdict.word + ": " : "") + verdict.text })]);
    if (stale) append(b, el("span", { class: "stale", text: stale }));
  }

  function showFacts(doc) {
    const facts = byId("facts");
    clear(facts);
    const rows = [["round", doc.round === null || doc.round === undefined ? "—" : String(doc.round)]];
    if (doc.role === "supernode") {
      rows.push(["leader", doc.leader_hostname || "—"]);
      const m = doc.map || {};
      rows.push(["map", String(m.digest || "").slice(0, 12)]);
      rows.push(["roster", "v" + m.roster_version]);
      rows.push(["decision", m.decision ? "round " + m.decision[0] + " by " + (rosterHost(doc, m.decision[1])) : "none"]);
    } else {
      rows.push(["roster", "v" + doc.roster_version]);
    }
    rows.push(["epoch", fmtTime(doc.epoch)]);
    for (const [k, v] of rows) {
      facts.append(el("div", { "data-fact": k }, [el("dt", { text: k }), el("dd", { text: v })]));
    }
    byId("whoami").textContent = "· " + doc.hostname + " (" + doc.role + ", " + doc.version + ")";
    document.title = "ESGF node manager · " + doc.hostname;
  }

  // -- the graph -------------------------------------------------------------------------------
  function drawGraph(doc) {
    const g = byId("graph");
    clear(g);
    const sns = doc.supernodes || [];
    const n = sns.length;
    const dense = n > DENSE;
    g.classList.toggle("dense", dense);
    const size = 700, c = size / 2;
    const nodeR = n <= DENSE ? 20 : (n <= 24 ? 11 : 7);
    const names = shortNames(sns.map((s) => s.hostname));
    // Dense: radial labels need room outside the circle; shrink it to fit the longest one.
    const longest = Math.max(0, ...sns.map((s) => denseLabel(s, names[s.hostname]).length));
    const R = n <= 1 ? 0 : (dense ? Math.max(170, Math.min(250, c - nodeR - 14 - longest * 6.6)) : 215);
    const pos = {};
    sns.forEach((s, i) => {
      const a = -Math.PI / 2 + (2 * Math.PI * i) / Math.max(1, n);
      pos[s.id] = { x: c + R * Math.cos(a), y: c + R * Math.sin(a), a: a };
    });
    const hostOf = {};
    sns.forEach((s) => { hostOf[s.id] = s.hostname; });
    const linkLayer = svg("g", { class: "links" });
    const labelLayer = svg("g", { class: "rtts" });
    const order = { up: 0, unverified: 1, init: 1, down: 2 };
    const links = (doc.links || []).slice().sort((x, y) => (order[x.status] || 0) - (order[y.status] || 0));
    for (const l of links) {
      const p = pos[l.from], q = pos[l.to];
      if (!p || !q) continue;
      const cls = l.status === "up" ? "up" : (l.status === "down" ? "down" : "unknown");
      const word = l.status === "up" ? "up" : (l.status === "down" ? "DOWN" : "not verified yet");
      const tip = hostOf[l.from] + " — " + hostOf[l.to] + ": " + word + ", latency " + fmtMs(l.rtt_ms);
      linkLayer.append(svg("line", {
        class: "link " + cls, x1: p.x, y1: p.y, x2: q.x, y2: q.y,
        "data-a": hostOf[l.from], "data-b": hostOf[l.to], "data-status": l.status,
      }, svg("title", { text: tip })));
      if (n <= 6) {
        const label = l.status === "up" ? fmtMs(l.rtt_ms) : word;
        labelLayer.append(svg("text", {
          class: "rtt halo " + cls, x: (p.x + q.x) / 2, y: (p.y + q.y) / 2 - 4,
        }, label === "no measurement yet" ? "…" : label));
      }
    }
    g.append(linkLayer, labelLayer);
    const nodes = svg("g", { class: "nodes" });
    g.append(nodes); // in the document before labels are measured (getBBox)
    for (const s of sns) {
      const p = pos[s.id];
      const hc = healthClass(s.health);
      const isLeader = s.id === doc.leader;
      const tip = s.hostname + " (id " + s.id + "): " + (HEALTH_WORD[s.health] || s.health) +
        "; serves " + s.members + " own + " + s.adopted + " adopted" +
        (isLeader ? "; leader of round " + doc.round : "") + (s.me ? "; this agent" : "");
      const grp = svg("g", {
        class: "node " + hc + (s.me ? " me" : ""), "data-host": s.hostname,
        "data-health": s.health, "data-leader": isLeader ? "true" : null,
      }, svg("title", { text: tip }));
      nodes.append(grp);
      if (isLeader) grp.append(svg("circle", { class: "leader-ring", cx: p.x, cy: p.y, r: nodeR + 6 }));
      grp.append(svg("circle", { cx: p.x, cy: p.y, r: nodeR }));
      if (!dense && hc === "down") {
        grp.append(svg("text", { class: "mark", x: p.x, y: p.y }, "✕"));
      }
      appendNodeLabel(grp, s, p, names[s.hostname], nodeR, dense, R);
    }
  }

  function denseLabel(s, name) {
    return truncate(name, 16) + (DOWN.has(s.health) ? " ✕ DOWN" : (s.health === "unhealthy" ? " ! unhealthy" : ""));
  }

  function appendNodeLabel(grp, s, p, name, nodeR, dense, R) {
    const down = DOWN.has(s.health);
    if (dense) {
      // Radial labels, reading outwards, so that 50 names around the circle do not collide.
      let deg = (p.a * 180) / Math.PI;
      const left = Math.cos(p.a) < 0;
      const x = 350 + (R + nodeR + 6) * Math.cos(p.a);
      const y = 350 + (R + nodeR + 6) * Math.sin(p.a);
      if (left) deg += 180;
      const text = denseLabel(s, name);
      grp.append(svg("text", {
        class: "label" + (down ? " label-health" : ""), x: x, y: y,
        "text-anchor": left ? "end" : "start", "dominant-baseline": "central",
        transform: "rotate(" + deg.toFixed(2) + " " + x.toFixed(2) + " " + y.toFixed(2) + ")",
      }, text));
      return;
    }
    // Few nodes: name, health word and what it serves, centred above (upper half) or below
    // the node.
    const x = p.x;
    const above = p.y < 350 - 10;
    const y = above ? p.y - nodeR - 10 : p.y + nodeR + 12;
    const serves = s.adopted ? s.members + " own + " + s.adopted + " adopted" : plural(s.members, "member");
    const lines = [
      [name, "label halo"],
      [HEALTH_WORD[s.health] || s.health, "label-health halo"],
      [down ? "serves nobody now" : "serves " + serves, "label-sub halo"],
    ];
    const texts = lines.map(([t, cls], i) => {
      const dy = above ? (i - lines.length + 1) * 21 : i * 21 + 8;
      const node = svg("text", { class: cls, x: x, y: y + dy, "text-anchor": "middle" }, t);
      grp.append(node);
      return node;
    });
    // Keep the block of text inside the drawing (long names next to the left/right edge).
    let left = Infinity, right = -Infinity;
    for (const t of texts) {
      const bb = t.getBBox();
      left = Math.min(left, bb.x);
      right = Math.max(right, bb.x + bb.width);
    }
    const shift = left < 4 ? 4 - left : (right > 696 ? 696 - right : 0);
    if (shift) texts.forEach((t) => t.setAttribute("x", String(x + shift)));
  }

  // -- who serves whom -----------------------------------------------------------------------
  function drawServing(doc) {
    const box = byId("serving");
    clear(box);
    const sns = doc.supernodes || [];
    const dense = sns.length > DENSE;
    const members = doc.members || [];
    const snHosts = new Set(sns.map((s) => s.hostname));
    const byServer = {};
    for (const m of members) {
      const k = m.server_hostname || "";
      (byServer[k] = byServer[k] || []).push(m);
    }
    for (const s of sns) {
      const hc = healthClass(s.health);
      const served = (byServer[s.hostname] || []).slice().sort((a, b) => (a.adopted - b.adopted) || a.hostname.localeCompare(b.hostname));
      const card = el("div", { class: "card " + hc, "data-server": s.hostname, "data-health": s.health }, [
        el("h3", {}, [el("span", { text: s.hostname }), snPill(s.health),
          s.id === doc.leader ? tag("leader", "leader") : null, s.me ? tag("me", "this agent") : null]),
      ]);
      if (DOWN.has(s.health)) {
        const away = members.filter((m) => m.home === s.id);
        card.append(el("div", { class: "counts", text: "serves nobody now; " + (away.length === 1 ? "its member is" : "its " + away.length + " members are") + " served elsewhere" }));
        card.append(el("ul", {}, away.map((m) => el("li", {}, [el("span", { text: m.hostname }),
          el("span", { class: "note", text: "→ " + (m.server_hostname || "UNSERVED") })]))));
      } else {
        card.append(el("div", { class: "counts", text: s.members + " own · " + s.adopted + " adopted" }));
        // Many supernodes: list what needs a look (adopted, not up); fold own healthy members.
        const fold = dense && served.length > 0;
        const quiet = fold ? served.filter((m) => !m.adopted && m.health === "good") : [];
        const loud = fold ? served.filter((m) => m.adopted || m.health !== "good") : served;
        if (loud.length || !quiet.length) card.append(memberList(loud));
        if (quiet.length) {
          card.append(el("details", {}, [el("summary", { text: plural(quiet.length, "own member") + " up" }),
            memberList(quiet)]));
        }
      }
      box.append(card);
    }
    for (const host of Object.keys(byServer).sort()) {
      if (host === "" || snHosts.has(host)) continue;
      box.append(el("div", { class: "card good", "data-server": host }, [
        el("h3", {}, [el("span", { text: host }), tag("promoted", "promoted standby")]),
        el("div", { class: "counts", text: plural(byServer[host].length, "member") + " served" }),
        memberList(byServer[host])]));
    }
    if (byServer[""]) {
      box.append(el("div", { class: "card unserved", "data-server": "" }, [
        el("h3", {}, [el("span", { text: "UNSERVED" }), pill("down", "no room anywhere")]),
        memberList(byServer[""])]));
    }
  }

  function memberList(members) {
    if (!members.length) return el("div", { class: "note", text: "no members" });
    return el("ul", {}, members.map((m) => el("li", { "data-member": m.hostname }, [
      el("span", { text: m.hostname }), memberPill(m.health),
      m.adopted ? tag("adopted", "adopted from " + m.home_hostname) : null,
      m.standby ? tag("standby", "standby") : null,
    ])));
  }

  function drawMembers(doc) {
    const body = byId("members").tBodies[0];
    clear(body);
    const rank = (m) => (m.server === null || m.server === undefined ? 0 : m.health === "unreachable" ? 1 : m.adopted ? 2 : 3);
    const sorted = (doc.members || []).slice().sort((a, b) => rank(a) - rank(b) || a.hostname.localeCompare(b.hostname));
    for (const m of sorted) {
      const unserved = m.server === null || m.server === undefined;
      const note = unserved ? "UNSERVED" : (m.adopted ? "adopted (home down)" : "") + (m.standby ? (m.adopted ? ", " : "") + "standby" : "");
      body.append(el("tr", {
        class: unserved ? "unserved" : (m.adopted ? "adopted" : null), "data-member": m.hostname,
        "data-server": m.server_hostname || "", "data-adopted": m.adopted ? "true" : "false",
      }, [el("td", { text: m.hostname }), el("td", { text: m.project }), el("td", {}, memberPill(m.health)),
        el("td", { text: m.home_hostname }), el("td", { text: m.server_hostname || "—" }),
        el("td", {}, m.adopted ? tag("adopted", note) : note)]));
    }
    if (!(doc.members || []).length) {
      body.append(el("tr", {}, el("td", { colspan: 6, class: "muted", text: "no members have joined" })));
    }
  }

  function drawTimeline(list, entries, empty) {
    clear(list);
    for (const e of entries.slice(0, 15)) list.append(e);
    if (!entries.length) list.append(el("li", { class: "muted", text: empty }));
  }

  function drawLinks(doc) {
    const links = doc.links || [];
    const hostOf = {};
    (doc.supernodes || []).forEach((s) => { hostOf[s.id] = s.hostname; });
    const notUp = links.filter((l) => l.status !== "up");
    const rtts = links.filter((l) => l.status === "up" && typeof l.rtt_ms === "number").map((l) => l.rtt_ms).sort((a, b) => a - b);
    const median = rtts.length ? rtts[Math.floor(rtts.length / 2)] : null;
    byId("links-summary").textContent = (links.length - notUp.length) + " of " + plural(links.length, "link") + " up" +
      (median !== null ? "; median latency " + fmtMs(median) + ", slowest " + fmtMs(rtts[rtts.length - 1]) : "") +
      (notUp.length ? "; not up:" : "");
    const ul = byId("links-down");
    clear(ul);
    // Links of a down supernode are down with it: one line per such supernode, then the rest.
    const downIds = new Set((doc.supernodes || []).filter((s) => DOWN.has(s.health)).map((s) => s.id));
    const ofDown = {};
    const others = [];
    for (const l of notUp) {
      const owner = downIds.has(l.from) ? l.from : (downIds.has(l.to) ? l.to : null);
      if (owner !== null && l.status === "down") (ofDown[owner] = ofDown[owner] || []).push(l);
      else others.push(l);
    }
    for (const id of Object.keys(ofDown)) {
      const n = ofDown[id].length;
      ul.append(el("li", { "data-supernode": hostOf[id], "data-status": "down" }, [
        (n === 1 ? hostOf[id] + " — " + hostOf[ofDown[id][0].from === id ? ofDown[id][0].to : ofDown[id][0].from] + ": "
          : hostOf[id] + ": all " + n + " links "), pill("down", "DOWN"), " (supernode down)"]));
    }
    for (const l of others) {
      ul.append(el("li", { "data-status": l.status }, [hostOf[l.from] + " — " + hostOf[l.to] + ": ",
        pill(l.status === "down" ? "down" : "unknown", l.status === "down" ? "DOWN" : "not verified yet")]));
    }
  }

  function renderSupernode(doc) {
    byId("supernode-view").hidden = false;
    byId("member-view").hidden = true;
    drawGraph(doc);
    drawLinks(doc);
    drawServing(doc);
    drawMembers(doc);
    drawTimeline(byId("timeline"), (doc.timeline || []).map((t) => el("li", { "data-round": t.round }, [
      el("span", { class: "round", text: "round " + t.round + ":" }), " ",
      String(t.summary).replace(/^round \d+:\s*/, ""), " ",
      el("span", { class: "who", text: "— decided by " + t.leader })])),
    "no decisions yet");
  }

  // -- a member's own view -----------------------------------------------------------------
  function renderMember(doc) {
    byId("supernode-view").hidden = true;
    byId("member-view").hidden = false;
    const facts = byId("member-facts");
    clear(facts);
    const rows = [
      ["hostname", doc.hostname], ["joined", doc.joined ? "yes" : "no (" + doc.state + ")"],
      ["member id", doc.member_id || "—"], ["project", doc.project || "—"],
      ["standby", doc.standby ? "yes" : "no"], ["home supernode", rosterHost(doc, doc.home)],
      ["served by", doc.server_hostname || "nobody"],
      ["adopted", doc.joined && doc.server && doc.server !== doc.home ? "yes: its home is down" : "no"],
      ["properties", (doc.properties || {}).status || "—"],
    ];
    for (const [k, v] of rows) append(facts, [el("dt", { text: k }), el("dd", { "data-key": k, text: v })]);
    drawTimeline(byId("attempts"), (doc.attempts || []).map((a) => el("li", {}, [
      el("span", { class: "round", text: a.supernode }), " ",
      el("span", { class: "who", text: typeof a.rtt_ms === "number" ? fmtMs(a.rtt_ms) : "no answer to the probe" }), ": ",
      a.answer ? a.answer + (a.reason ? " (" + a.reason + ")" : "") : "not asked"])),
    "no join attempt recorded");
    byId("serving-list").textContent = (doc.serving || []).length ? doc.serving.join(", ") : "nobody (not promoted)";
    const body = byId("roster").tBodies[0];
    clear(body);
    for (const s of ((doc.roster || {}).supernodes || [])) {
      const marks = [s.id === doc.home ? tag("me", "home") : null, s.id === doc.server ? tag("leader", "serves it now") : null];
      body.append(el("tr", { "data-host": s.hostname }, [el("td", { text: s.id }), el("td", { text: s.hostname }),
        el("td", { text: s.address }), el("td", { text: s.port }), el("td", {}, marks)]));
    }
  }

  // -- refresh loop --------------------------------------------------------------------------
  function render(doc) {
    showFacts(doc);
    const verdict = doc.role === "member" ? assessMember(doc) : assess(doc);
    showBanner(verdict, null);
    // Redraw the heavy parts only when something other than the clock changed.
    const key = JSON.stringify(doc, (k, v) => (k === "generated_at" || k === "agent" || k === "round" ||
      k === "leader" || k === "leader_hostname" || k === "local_links" || k === "stats" ? undefined : v));
    if (key !== lastKey || doc.leader !== (lastDoc || {}).leader) {
      if (doc.role === "member") renderMember(doc); else renderSupernode(doc);
      lastKey = key;
    }
    lastDoc = doc;
    document.body.setAttribute("data-role", doc.role);
    document.body.setAttribute("data-state", verdict.state);
  }

  async function refresh() {
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), FETCH_TIMEOUT_MS);
    try {
      const resp = await fetch(STATUS_URL, { cache: "no-store", signal: ctl.signal });
      if (!resp.ok) throw new Error("HTTP " + resp.status);
      const doc = await resp.json();
      const rs = typeof doc.round_s === "number" ? doc.round_s * 1000 : 2000;
      refreshMs = Math.min(MAX_REFRESH_MS, Math.max(MIN_REFRESH_MS, rs));
      render(doc);
      failures = 0;
      lastOk = new Date();
    } catch (err) {
      failures += 1;
      const since = lastOk ? "since " + clock(lastOk) : "so far";
      const why = err && err.name === "AbortError" ? "no answer in time" : String(err && err.message || err);
      const verdict = lastDoc ? (lastDoc.role === "member" ? assessMember(lastDoc) : assess(lastDoc))
        : { state: "unknown", word: "UNKNOWN", text: "no status read yet" };
      showBanner(verdict, "cannot read this agent's status " + since + " (" + why + "); retrying");
      document.body.setAttribute("data-state", "stale");
    } finally {
      clearTimeout(timer);
    }
    byId("refresh").textContent = "updated " + (lastOk ? clock(lastOk) : "never") +
      ", refreshing every " + (refreshMs / 1000).toFixed(refreshMs % 1000 ? 1 : 0) + " s";
    setTimeout(refresh, failures ? Math.min(MAX_REFRESH_MS, refreshMs * (1 + failures)) : refreshMs);
  }

  document.addEventListener("DOMContentLoaded", refresh);
})();
