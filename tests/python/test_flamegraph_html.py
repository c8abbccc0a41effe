"""The HTML flame graph page (`vigil record --format html`) in headless Chromium.

vigil_make_flamegraph writes pages of synthetic profiles whose numbers are
known (tests/cpp/make_flamegraph.cpp): main > handle_request > query_db (600
samples, with build_query under query_db), main > render (300), main > log
(100). Chromium loads a page with the view in the URL fragment and dumps the
DOM once the page's script has run, within a virtual time budget (nothing
here sleeps); the tests read the view back from #status's data-* attributes.
Chromium must be installed already (scripts/install-deps.sh does it).
"""
import html.parser
import json
import os
import re
import shutil
import subprocess
import urllib.parse

import pytest

from conftest import ARTIFACTS, ROOT

BUILD = os.environ.get("VIGIL_BUILD_DIR") or os.path.join(ROOT, "build")
MAKE_FLAMEGRAPH = os.path.join(BUILD, "tests", "cpp", "vigil_make_flamegraph")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--virtual-time-budget=5000",
]
# Every host name fails to resolve: a page that needed the network would break.
NO_NETWORK = '--host-resolver-rules=MAP * ~NOTFOUND'
# A guard against a hung browser, not a synchronisation.
CHROMIUM_TIMEOUT = 120


def chromium_binary():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    pytest.fail("Chromium is not installed (scripts/install-deps.sh installs it)")


def make_page(path, *args):
    if not os.access(MAKE_FLAMEGRAPH, os.X_OK):
        pytest.fail("not built: %s (ninja -C build vigil_make_flamegraph)" % MAKE_FLAMEGRAPH)
    subprocess.run([MAKE_FLAMEGRAPH, str(path), *map(str, args)], check=True, capture_output=True,
                   timeout=60)
    return path


def run_chromium(tmp_path, url, *flags):
    profile_dir = tmp_path / ("chromium-profile-%d" % len(list(tmp_path.iterdir())))
    command = [chromium_binary(), *CHROMIUM_FLAGS, "--user-data-dir=%s" % profile_dir, *flags, url]
    result = subprocess.run(command, capture_output=True, text=True, timeout=CHROMIUM_TIMEOUT)
    assert result.returncode == 0, "chromium failed: %s" % result.stderr[-2000:]
    return result.stdout


def page_url(page, **view):
    """file:///...html#search=...&zoom=a;b, each part encoded as the page expects."""
    fields = []
    if "search" in view:
        fields.append("search=" + urllib.parse.quote(view["search"], safe=""))
    if "zoom" in view:
        fields.append("zoom=" + ";".join(urllib.parse.quote(s, safe="") for s in view["zoom"]))
    return "file://%s%s" % (page, "#" + "&".join(fields) if fields else "")


class DomReader(html.parser.HTMLParser):
    """Collects the attributes and text of the elements with the given ids."""

    def __init__(self, ids):
        super().__init__()
        self.elements = {}
        self._wanted = set(ids)
        self._open = []  # [id, depth] of wanted elements being read

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        for entry in self._open:
            entry[1] += 1
        if attributes.get("id") in self._wanted:
            self.elements[attributes["id"]] = {"attrs": attributes, "text": ""}
            self._open.append([attributes["id"], 1])

    def handle_endtag(self, tag):
        for entry in self._open:
            entry[1] -= 1
        self._open = [entry for entry in self._open if entry[1] > 0]

    def handle_data(self, data):
        for element_id, _ in self._open:
            self.elements[element_id]["text"] += data


def read_dom(dom, *ids):
    reader = DomReader(ids)
    reader.feed(dom)
    return reader.elements


def load_status(tmp_path, url, *flags):
    """The page's view as #status reports it, once the page is ready."""
    status = read_dom(run_chromium(tmp_path, url, "--dump-dom", *flags), "status")["status"]
    data = {key[len("data-"):]: value for key, value in status["attrs"].items()
            if key.startswith("data-")}
    assert data.get("state") == "ready", "page not ready: %s" % status
    data["text"] = status["text"]
    return data


@pytest.fixture(scope="module")
def known_page(tmp_path_factory):
    return make_page(tmp_path_factory.mktemp("flamegraph") / "known.html")


@pytest.fixture(scope="module")
def big_page(tmp_path_factory):
    return make_page(tmp_path_factory.mktemp("flamegraph") / "big.html", "--frames", 10000)


def test_counts_every_sample(known_page, tmp_path):
    status = load_status(tmp_path, page_url(known_page))
    assert status["total-samples"] == "1000"
    assert status["distinct-frames"] == "8"
    assert status["rendered-frames"] == "9"  # "all" and the eight frames
    assert status["zoomed-name"] == "all"
    assert status["matched-percent"] == ""


@pytest.mark.parametrize("search, percent", [
    ("query", "60.0"),  # query_db and build_query under it: each sample once
    ("QUERY", "60.0"),  # case-insensitive
    ("db.py", "60.0"),  # files match too
    ("/^re/", "30.0"),  # a regular expression: render and render_row under it
    ("/execute|log/", "55.0"),
    ("no such frame", "0.0"),
])
def test_search_reports_the_share_of_samples_matched(known_page, tmp_path, search, percent):
    status = load_status(tmp_path, page_url(known_page, search=search))
    assert status["search"] == search
    assert status["matched-percent"] == percent
    assert "Matched: %s%% of samples" % percent in status["text"]


def test_invalid_regex_matches_nothing_and_says_so(known_page, tmp_path):
    status = load_status(tmp_path, page_url(known_page, search="/(/"))
    assert status["matched-percent"] == ""
    assert "Invalid regular expression" in status["text"]


@pytest.mark.parametrize("path", [
    ["main", "handle_request"],
    ["main (app.py:1)", "handle_request (app.py:10)"],  # full labels, as the page writes when names clash
])
def test_zoom_path_in_fragment(known_page, tmp_path, path):
    status = load_status(tmp_path, page_url(known_page, zoom=path))
    assert status["zoomed-name"] == "handle_request"
    assert status["zoomed-label"] == "handle_request (app.py:10)"
    assert status["zoom-path"] == "main;handle_request"
    # all and main collapsed above it, then it and its subtree.
    assert status["rendered-frames"] == "6"


def test_zoom_stops_where_the_path_stops_matching(known_page, tmp_path):
    status = load_status(tmp_path, page_url(known_page, zoom=["main", "render", "missing"]))
    assert status["zoomed-name"] == "render"


def test_zoom_and_search_together(known_page, tmp_path):
    status = load_status(tmp_path, page_url(known_page, search="/^re/", zoom=["main", "render"]))
    assert status["zoomed-name"] == "render"
    assert status["matched-percent"] == "30.0"  # always a share of all samples


# Drives the page as a user would (hover, click, Escape, typing), after its
# own script has run, and records what it saw in #interactions.
INTERACTIONS = """<script>
(() => {
  const canvas = document.getElementById('flamegraph');
  const tooltip = document.getElementById('tooltip');
  const status = document.getElementById('status');
  const rowHeight = Number(canvas.dataset.rowHeight);
  const at = (fraction, row) => {
    const box = canvas.getBoundingClientRect();
    return {bubbles: true, clientX: box.left + box.width * fraction,
            clientY: box.top + rowHeight * (row + 0.5)};
  };
  const tooltipText = () => tooltip.hidden ? '' :
      Array.from(tooltip.querySelectorAll('.name, .where, dt, dd, .hint'), (e) => e.textContent).join('|');
  const seen = {};
  canvas.dispatchEvent(new MouseEvent('mousemove', at(0.3, 2)));
  seen.hover = tooltipText();
  canvas.dispatchEvent(new MouseEvent('click', at(0.3, 2)));
  seen.clicked = status.dataset.zoomedName;
  seen.hashAfterClick = location.hash;
  canvas.dispatchEvent(new MouseEvent('mousemove', at(0.9, 4)));
  seen.hoverZoomed = tooltipText();
  canvas.dispatchEvent(new MouseEvent('mouseleave'));
  seen.afterLeave = tooltipText();
  document.dispatchEvent(new KeyboardEvent('keydown', {key: 'Escape', bubbles: true}));
  seen.afterEscape = status.dataset.zoomedName;
  seen.hashAfterEscape = location.hash;
  const search = document.getElementById('search');
  search.value = 'query';
  search.dispatchEvent(new Event('input', {bubbles: true}));
  seen.matchedAfterTyping = status.dataset.matchedPercent;
  seen.hashAfterTyping = location.hash;
  canvas.dispatchEvent(new MouseEvent('click', at(0.95, 2)));
  seen.clickedLog = status.dataset.zoomedName;
  document.getElementById('reset-zoom').click();
  seen.afterReset = status.dataset.zoomedName;
  const out = document.createElement('pre');
  out.id = 'interactions';
  out.textContent = JSON.stringify(seen);
  document.body.append(out);
})();
</script>
</body>"""


def test_hover_click_escape_and_typing(known_page, tmp_path):
    page = tmp_path / "interactive.html"
    page.write_text(known_page.read_text(encoding="utf-8").replace("</body>", INTERACTIONS),
                    encoding="utf-8")
    dom = run_chromium(tmp_path, page_url(page), "--dump-dom")
    seen = json.loads(read_dom(dom, "interactions")["interactions"]["text"])
    assert seen["hover"] == ("handle_request|app.py:10|Samples|600 (self 0)|Of all samples|60.0%"
                             "|Click to zoom")
    assert seen["clicked"] == "handle_request"
    assert seen["hashAfterClick"] == "#zoom=main;handle_request"
    assert seen["hoverZoomed"] == ("build_query|db.py:12|Samples|150 (self 150)|Of all samples|15.0%"
                                   "|Of handle_request|25.0%|Click to zoom")
    assert seen["afterLeave"] == ""
    assert seen["afterEscape"] == "all"
    assert seen["hashAfterEscape"] == ""
    assert seen["matchedAfterTyping"] == "60.0"
    assert seen["hashAfterTyping"] == "#search=query"
    assert seen["clickedLog"] == "log"
    assert seen["afterReset"] == "all"


def test_hostile_names_are_text_not_markup(tmp_path):
    title = "python -c '</script><h2 id=\"injected\">{{TITLE}}</h2>' & more"
    frame = "</script><script>document.body.id='pwned'</script><!--"
    page = make_page(tmp_path / "hostile.html", "--title", title, "--extra-frame", frame)
    dom = run_chromium(tmp_path, page_url(page, search="document.body"), "--dump-dom")
    assert "injected" not in read_dom(dom, "injected")
    assert 'id="pwned"' not in dom
    status = load_status(tmp_path, page_url(page, search="document.body"))
    assert status["total-samples"] == "1001"
    assert status["matched-samples"] == "1"
    assert re.search(r"<h1>python -c '&lt;/script&gt;&lt;h2 id=\"injected\"&gt;\{\{TITLE\}\}", dom)


def test_ten_thousand_frames_render_within_the_budget(big_page, tmp_path):
    size = os.path.getsize(big_page)
    assert size < 2_000_000, "page grew to %d bytes" % size
    status = load_status(tmp_path, page_url(big_page, search="handle_12"))
    assert status["distinct-frames"] == "10005"  # and a process and four threads
    assert int(status["rendered-frames"]) > 0
    assert 0 < float(status["matched-percent"]) < 100


def test_makes_no_network_request(known_page, big_page, tmp_path):
    for page in (known_page, big_page):
        text = page.read_text(encoding="utf-8")
        assert not re.search(r"""(src|href|action)\s*=\s*["']?\s*(https?:)?//""", text, re.I)
        assert not re.search(r"url\(|@import|https?://", text, re.I)
        assert "default-src 'none'" in text  # and the page forbids any fetch itself
    status = load_status(tmp_path, page_url(known_page, search="query"), NO_NETWORK)
    assert status["matched-percent"] == "60.0"
    assert status["resource-requests"] == "0"


def take_screenshot(tmp_path, url, name):
    os.makedirs(ARTIFACTS, exist_ok=True)
    path = os.path.join(ARTIFACTS, name)
    if os.path.exists(path):
        os.remove(path)
    run_chromium(tmp_path, url, "--screenshot=%s" % path, "--window-size=1400,900",
                 "--hide-scrollbars")
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_screenshots(known_page, big_page, tmp_path):
    take_screenshot(tmp_path, page_url(known_page, search="query", zoom=["main", "handle_request"]),
                    "flamegraph-zoomed-searched.png")
    take_screenshot(tmp_path, page_url(big_page, search="handle_12"),
                    "flamegraph-10000-frames-searched.png")
