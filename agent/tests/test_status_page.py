"""The status page (``/esgf-nm/``) in a real headless Chromium, against a real federation.

Debian's ``/usr/bin/chromium`` driven by Playwright for Python (never ``playwright install``:
no browser is downloaded). Three supernodes and three members on loopback with mTLS; the
page is loaded from a supernode and from a member, a supernode is SIGKILLed, and the page
must say so in words (not only in colour) and show its members adopted within a few rounds.
A synthetic 50-supernode status document checks that the page stays readable at that size.

Screenshots are kept for people to look at under ``tests/output/status-page/`` at the
repository root (git-ignored).
"""

from __future__ import annotations

import json
import re
import shutil
import signal
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest
import requests
from support.federation import Federation, bootstrap, build_federation, wait_for

pytestmark = pytest.mark.slow

ROUND_S = 1.0
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update",
                 "--no-first-run", "--disable-sync", "--no-proxy-server"]
#: A common laptop screen.
LAPTOP = {"width": 1440, "height": 900}
OUTPUT = Path(__file__).resolve().parents[2] / "tests" / "output" / "status-page"
#: Browser-side waits, in milliseconds (the page refreshes every round, 1 s here).
PAGE_WAIT_MS = 30_000
HEALTHY = "() => document.body.dataset.state === 'healthy'"


@pytest.fixture(scope="module")
def output() -> Path:
    shutil.rmtree(OUTPUT, ignore_errors=True)
    OUTPUT.mkdir(parents=True, exist_ok=True)
    return OUTPUT


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    sync_api = pytest.importorskip("playwright.sync_api",
                                   reason="playwright is not installed (requirements-dev.txt)")
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium "
                    "(tests/tools/install-system-packages.sh, as root)")
    with sync_api.sync_playwright() as pw:
        try:
            b = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS,
                                   headless=True)
        except sync_api.Error as exc:
            pytest.skip(f"chromium at {CHROMIUM} cannot be started: {exc}")
        try:
            yield b
        finally:
            b.close()


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Federation]:
    f = build_federation(tmp_path_factory.mktemp("statuspage"), 3, 3, round_s=ROUND_S)
    try:
        bootstrap(f)
        yield f
    finally:
        f.stop_all()


class PageErrors:
    """Collects script errors and failed requests of a page: the page must have none."""

    def __init__(self, page: Any) -> None:
        self.errors: List[str] = []
        page.on("pageerror", lambda exc: self.errors.append(f"page error: {exc}"))
        page.on("console", lambda msg: self.errors.append(f"console: {msg.text}")
                if msg.type == "error" else None)

    def check(self, where: str) -> None:
        assert not self.errors, f"{where}: the page reported errors: {self.errors}"


def wait_page(page: Any, predicate: str, what: str, output: Path) -> None:
    """Wait for a JS predicate (arrow function text); on timeout, say what the page showed."""
    try:
        page.wait_for_function(predicate, timeout=PAGE_WAIT_MS)
    except Exception as exc:  # playwright's TimeoutError (the module is imported lazily)
        path = shot(page, output, "timeout-" + re.sub(r"[^a-z0-9]+", "-", what.lower())[:60])
        banner = page.inner_text("#banner")
        raise AssertionError(f"timed out after {PAGE_WAIT_MS / 1000:.0f} s waiting for {what}; "
                             f"banner: {banner!r}; screenshot: {path}") from exc


def new_page(browser: Any) -> Any:
    ctx = browser.new_context(ignore_https_errors=True, viewport=LAPTOP)
    return ctx.new_page()


def plain_session(fed: Federation) -> requests.Session:
    s = requests.Session()
    s.trust_env = False
    s.verify = fed.pki.ca_cert
    return s


def node_hosts(page: Any) -> List[str]:
    return list(page.eval_on_selector_all("#graph .node", "els => els.map(e => e.dataset.host)"))


def shot(page: Any, output: Path, name: str, full_page: bool = True) -> Path:
    path = output / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path


# -- served, public, self-contained -------------------------------------------------------
def test_page_is_public_and_loads_nothing_from_elsewhere(fed: Federation) -> None:
    s = plain_session(fed)  # no client certificate
    for h in ("sn1.test", "m1.test"):
        node = fed.nodes[h]
        page = s.get(node.url("/esgf-nm/"), timeout=5)
        assert page.status_code == 200, page.text
        assert page.headers["Content-Type"].startswith("text/html")
        csp = page.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "connect-src 'self'" in csp
        redirect = s.get(node.url("/esgf-nm"), timeout=5, allow_redirects=False)
        assert redirect.status_code == 308 and redirect.headers["Location"] == "/esgf-nm/"
        for asset, ctype in (("app.css", "text/css"), ("app.js", "text/javascript")):
            r = s.get(node.url(f"/esgf-nm/static/{asset}"), timeout=5)
            assert r.status_code == 200 and r.headers["Content-Type"].startswith(ctype)
            # Nothing fetched from another host: no absolute URLs except the SVG namespace.
            urls = set(re.findall(r"https?://[^\s\"')]+", r.text))
            assert urls <= {"http://www.w3.org/2000/svg"}, (asset, urls)
        assert not re.search(r"(src|href)=\"(https?:)?//", page.text)
    assert s.get(fed.nodes["sn1.test"].url("/esgf-nm/static/nope.js"),
                 timeout=5).status_code == 404


def test_fifty_supernodes_stay_readable_on_a_laptop(browser: Any, fed: Federation,
                                                    output: Path) -> None:
    """A synthetic 50-supernode document (same keys as a real one) served to the real page."""
    real = plain_session(fed).get(fed.nodes["sn1.test"].url("/esgf-nm/v1/status"),
                                  timeout=5).json()
    doc = synthetic_status(real, 50)
    page = new_page(browser)
    errors = PageErrors(page)
    # Answered inside the browser (not by a Playwright route, whose handler only runs while
    # this test waits on Playwright: a slow screenshot would starve the page's refresh).
    page.add_init_script(
        "(() => { const doc = " + json.dumps(doc) + "; const real = window.fetch;"
        " window.fetch = (url, opts) => String(url).endsWith('v1/status')"
        " ? Promise.resolve(new Response(JSON.stringify(doc),"
        " {headers: {'Content-Type': 'application/json'}})) : real(url, opts); })();")
    page.goto(fed.nodes["sn1.test"].url("/esgf-nm/"))
    wait_page(page, "() => document.querySelectorAll('#graph .node').length === 50",
              "50 supernodes drawn", output)
    shot(page, output, "fifty-supernodes-screen", full_page=False)  # what fits on a laptop
    path = shot(page, output, "fifty-supernodes")
    hosts = node_hosts(page)
    assert hosts == [s["hostname"] for s in doc["supernodes"]], f"see {path}"
    assert page.locator("#graph line.link").count() == 50 * 49 // 2, f"see {path}"
    down_links = sum(1 for link in doc["links"] if link["status"] == "down")
    assert page.locator("#graph line.link.down").count() == down_links, f"see {path}"
    banner = page.inner_text("#banner")
    assert banner.startswith("DEGRADED") and "2 supernodes down" in banner, (banner, path)
    assert "1 member UNSERVED" in banner, (banner, path)
    for s in doc["supernodes"]:
        if s["health"] == "unreachable":
            label = page.text_content(f'#graph .node[data-host="{s["hostname"]}"] text.label') or ""
            assert "DOWN" in label, (label, path)
    assert page.locator("#serving .card").count() == 51, f"50 supernodes + unserved: {path}"
    assert page.locator("#members tbody tr").count() == len(doc["members"])
    # Readable: nothing wider than the screen, every name inside the drawing, names not tiny.
    layout = page.evaluate("""() => {
        const svg = document.getElementById('graph').getBoundingClientRect();
        const labels = [...document.querySelectorAll('#graph text.label')].map(
            t => t.getBoundingClientRect());
        const outside = labels.filter(r => r.left < svg.left - 1 || r.right > svg.right + 1
                                        || r.top < svg.top - 1 || r.bottom > svg.bottom + 1);
        const sizes = labels.map(r => Math.min(r.width, r.height));
        return {scroll: document.documentElement.scrollWidth, width: window.innerWidth,
                svgWidth: svg.width, svgTop: svg.top, outside: outside.length,
                smallest: Math.min(...sizes)};
    }""")
    assert layout["scroll"] <= layout["width"], (layout, path)
    assert layout["outside"] == 0, (layout, path)
    assert layout["smallest"] >= 8, (layout, path)
    assert layout["svgWidth"] + layout["svgTop"] <= LAPTOP["height"] + 200, (layout, path)
    errors.check(f"50-supernode page ({path})")
    page.context.close()


def test_synthetic_document_matches_the_real_shape(fed: Federation) -> None:
    """Guard for the helper itself: it follows the agent's status format."""
    wait_for(lambda: len(fed.status("sn1.test")["members"]) >= 3, 15, "members in status")
    doc = synthetic_status(fed.status("sn1.test"), 50)
    assert len(doc["supernodes"]) == 50 and len(doc["links"]) == 1225
    assert len(doc["members"]) == 200 and len(doc["unplaced"]) == 1


def test_member_page_shows_its_own_view(browser: Any, fed: Federation, output: Path) -> None:
    page = new_page(browser)
    errors = PageErrors(page)
    page.goto(fed.nodes["m1.test"].url("/esgf-nm/"))
    wait_page(page, HEALTHY, "the member page to show a healthy member", output)
    assert page.is_visible("#member-view") and not page.is_visible("#supernode-view")
    path = shot(page, output, "member")
    st = fed.status("m1.test")
    banner = page.inner_text("#banner")
    assert banner.startswith("JOINED") and st["server_hostname"] in banner, (banner, path)
    served = page.inner_text('#member-facts dd[data-key="served by"]')
    assert served == st["server_hostname"], (served, path)
    rows = page.eval_on_selector_all("#roster tbody tr", "els => els.map(e => e.dataset.host)")
    assert rows == fed.supernodes(), (rows, path)
    errors.check(f"member page ({path})")
    page.context.close()


def test_supernode_page_shows_everyone_then_a_killed_supernode_down_and_adopted(
        browser: Any, fed: Federation, output: Path) -> None:
    page = new_page(browser)
    errors = PageErrors(page)
    page.goto(fed.nodes["sn1.test"].url("/esgf-nm/"))
    wait_page(page, HEALTHY + " && document.querySelectorAll('#graph line.link.up').length"
              f" === 3 && document.querySelectorAll('#members tbody tr[data-member]').length"
              f" === {len(fed.members())}", "a healthy federation with every member", output)
    healthy = shot(page, output, "supernode-healthy")
    assert node_hosts(page) == fed.supernodes(), f"see {healthy}"
    assert page.locator("#graph line.link.up").count() == 3, f"see {healthy}"
    assert page.inner_text("#banner").startswith("HEALTHY"), f"see {healthy}"
    cards = page.eval_on_selector_all("#serving .card", "els => els.map(e => e.dataset.server)")
    assert cards == fed.supernodes(), (cards, healthy)
    listed = page.eval_on_selector_all("#members tbody tr",
                                       "els => els.map(e => e.dataset.member)")
    assert sorted(listed) == fed.members(), (listed, healthy)
    facts = page.inner_text("#facts")
    st = fed.status("sn1.test")
    assert st["map"]["digest"][:12] in facts and "v1" in facts, (facts, healthy)
    # The victim: the supernode serving the most members (so there is something to adopt).
    served: Dict[str, int] = {}
    for m in st["members"]:
        served[m["server_hostname"]] = served.get(m["server_hostname"], 0) + 1
    victim = max((h for h in fed.supernodes() if h != "sn1.test"),
                 key=lambda h: (served.get(h, 0), h))
    moved = sorted(m["hostname"] for m in st["members"] if m["server_hostname"] == victim)
    member_page = new_page(browser)
    member_errors = PageErrors(member_page)
    watcher = moved[0] if moved else "m1.test"
    member_page.goto(fed.nodes[watcher].url("/esgf-nm/"))
    wait_page(member_page, HEALTHY, f"{watcher}'s page to show it healthy", output)

    victim_page = new_page(browser)
    victim_page.goto(fed.nodes[victim].url("/esgf-nm/"))
    wait_page(victim_page, HEALTHY, f"{victim}'s own page", output)

    fed.kill(victim, signal.SIGKILL)

    # The victim's own page, still open, says it lost its agent (in words).
    wait_page(victim_page, "() => document.body.dataset.state === 'stale'",
              f"{victim}'s own page to go stale", output)
    stale = shot(victim_page, output, "supernode-killed-own-page")
    text = victim_page.inner_text("#banner")
    assert text.startswith("STALE") and "cannot read this agent's status" in text, (text, stale)
    victim_page.context.close()

    node = f'#graph .node[data-host="{victim}"]'
    wait_page(page, f"""() => {{
        const n = document.querySelector('{node}');
        return n && n.dataset.health === 'unreachable'
            && document.querySelectorAll('#graph line.link.down').length === 2
            && {json.dumps(moved)}.every(m => {{
                const r = document.querySelector(`#members tr[data-member="${{m}}"]`);
                return r && r.dataset.adopted === 'true'; }}); }}""",
              f"{victim} down, its links down and {moved} adopted", output)
    degraded = shot(page, output, "supernode-degraded")
    banner = page.inner_text("#banner")
    assert banner.startswith("DEGRADED"), (banner, degraded)
    assert f"1 supernode down ({victim})" in banner, (banner, degraded)
    if moved:
        assert f"{plural(len(moved), 'member')} adopted" in banner, (banner, degraded)
    # Down in words, not only in colour: on the graph, its card, and dashed links.
    label = (page.text_content(node) or "").upper()
    assert "DOWN" in label, (label, degraded)
    card = page.inner_text(f'#serving .card[data-server="{victim}"]')
    assert "DOWN" in card and "served elsewhere" in card, (card, degraded)
    dashed = page.eval_on_selector_all(
        f'#graph line.link[data-a="{victim}"], #graph line.link[data-b="{victim}"]',
        "els => els.map(e => [e.dataset.status, getComputedStyle(e).strokeDasharray])")
    assert len(dashed) == 2 and all(s == "down" and d not in ("none", "") for s, d in dashed), \
        (dashed, degraded)
    links = page.inner_text("#links-down")
    assert f"{victim}: all 2 links DOWN (supernode down)" in links, (links, degraded)
    for m in moved:
        row = page.inner_text(f'#members tr[data-member="{m}"]')
        assert "adopted" in row and victim not in row.split("\t")[4], (row, degraded)
        adopted_tag = page.inner_text(f'#serving li[data-member="{m}"]')
        assert f"ADOPTED FROM {victim.upper()}" in adopted_tag.upper(), (adopted_tag, degraded)
    timeline = page.inner_text("#timeline")
    assert f"{victim} down (unreachable)" in timeline, (timeline, degraded)
    if moved:
        wait_page(member_page, "() => document.body.dataset.state === 'warning'",
                  f"{watcher}'s page to show it adopted", output)
        member_shot = shot(member_page, output, "member-adopted")
        text = member_page.inner_text("#banner")
        assert text.startswith("ADOPTED") and victim in text, (text, member_shot)
        member_errors.check(f"member page of {watcher} ({member_shot})")
    errors.check(f"supernode page ({degraded})")
    page.context.close()
    member_page.context.close()


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


# -- a synthetic federation of any size ------------------------------------------------------
def synthetic_status(real: Dict[str, Any], n: int) -> Dict[str, Any]:
    """A supernode's status document for ``n`` (>= 41) supernodes, 4 members each, two down
    (their members adopted, one left unserved), one unhealthy and one more link down.

    Built from a real document so that it has exactly the keys the agent publishes.
    """
    sites = ["dkrz.de", "llnl.gov", "ipsl.fr", "ceda.ac.uk", "nci.org.au",
             "very-long-institute-name.example.org"]
    hosts = [f"esgf-node{i:02d}.{sites[i % len(sites)]}" for i in range(1, n + 1)]
    ids = [str(i) for i in range(1, n + 1)]
    down = {ids[6], ids[22]}
    unhealthy = {ids[30]}
    health = {i: "unreachable" if i in down else "unhealthy" if i in unhealthy else "good"
              for i in ids}
    members: List[Dict[str, Any]] = []
    live = [i for i in ids if i not in down]
    k = 0
    for idx, home in enumerate(ids):
        for j in range(4):
            hostname = f"data{j}.site{idx + 1:02d}.example.org"
            server: Any = home
            if home in down:
                server = live[k % len(live)]
                k += 1
                if home == ids[22] and j == 3:
                    server = None
            members.append({
                "id": f"{home}.{j + 1}", "hostname": hostname, "project": "CMIP6",
                "standby": j == 3, "home": home, "home_hostname": hosts[int(home) - 1],
                "server": server,
                "server_hostname": hosts[int(server) - 1] if server else None,
                "adopted": server is not None and server != home,
                "health": "new" if server is None else ("unreachable" if j == 2 and idx == 40
                                                        else "good")})
    members.sort(key=lambda m: m["hostname"])
    sn_rows = []
    for i, h in zip(ids, hosts):
        sn_rows.append({"id": i, "hostname": h, "health": health[i], "me": i == "1",
                        "members": sum(1 for m in members
                                       if m["server"] == i and not m["adopted"]),
                        "adopted": sum(1 for m in members if m["server"] == i and m["adopted"])})
    links = []
    for a in range(n):
        for b in range(a + 1, n):
            status = "down" if (ids[a] in down or ids[b] in down or (a, b) == (2, 40)) \
                else "up"
            links.append({"from": ids[a], "to": ids[b], "status": status,
                          "rtt_ms": None if status == "down" else 5.0 + (a * 7 + b * 3) % 180})
    doc = dict(real)
    doc.update({
        "hostname": hosts[0], "id": "1", "round": 123456, "leader": "5",
        "leader_hostname": hosts[4],
        "roster": {"version": 7, "supernodes": [
            {"id": i, "hostname": h, "address": f"10.0.{int(i) // 250}.{int(i) % 250}",
             "port": 7443} for i, h in zip(ids, hosts)]},
        "supernodes": sn_rows, "members": members, "links": links,
        "unplaced": [m["hostname"] for m in members if m["server"] is None],
        "timeline": [
            {"round": 123450, "leader": hosts[4],
             "summary": "round 123450: esgf-node23.ceda.ac.uk down (unreachable), 3 members "
                        "moved to esgf-node04.nci.org.au, esgf-node05.very-long-institute-"
                        "name.example.org, esgf-node06.dkrz.de"},
            {"round": 123300, "leader": hosts[1],
             "summary": "round 123300: esgf-node07.llnl.gov down (unreachable), 4 members "
                        "moved to esgf-node01.llnl.gov, esgf-node02.ipsl.fr, "
                        "esgf-node03.ceda.ac.uk, esgf-node04.nci.org.au"},
            {"round": 123000, "leader": hosts[0],
             "summary": "round 123000: link esgf-node03.ceda.ac.uk-esgf-node41.ipsl.fr "
                        "down"}],
    })
    doc["map"] = dict(real["map"], roster_version=7, decision=[123450, "5"])
    assert set(doc) == set(real), set(doc) ^ set(real)
    for key in ("supernodes", "members", "links"):
        if real[key]:
            assert set(doc[key][0]) == set(real[key][0]), (key, set(doc[key][0]))
    return doc
