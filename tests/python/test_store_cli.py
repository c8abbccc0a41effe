"""`vigil show` and `vigil query` on a store of known requests.

vigil_fill_store (tests/cpp/fill_store.cpp) writes them through the agent's
StoreWriter: GET /items (items_001..100, item i took i ms, started i minutes
- 30 s ago, alice when i is odd else bob, an error when i % 25 == 0), POST
/order (order_01..20, order j took 10*j ms, two days ago, carol, an error when
j % 4 == 0), GET /report (known_einstein_0001: 2.5 s, HTTP 500, a 200-sample
profile, an exception with locals) and GET /health (plain_curie_0002: no user,
nothing kept).
"""
import json
import os
import re
import subprocess

import pytest

from conftest import ROOT, run_vigil

BUILD = os.environ.get("VIGIL_BUILD_DIR") or os.path.join(ROOT, "build")
FILL_STORE = os.path.join(BUILD, "tests", "cpp", "vigil_fill_store")
USAGE, BAD_FILE, NO_SUCH_TRANSACTION = 2, 9, 13
FOLDED = [
    "main (/srv/app.py:10);handle (/srv/app.py:20);query (/srv/db.py:5) 120",
    "main (/srv/app.py:10);handle (/srv/app.py:20);render (/srv/view.py:7) 60",
    "main (/srv/app.py:10);handle (/srv/app.py:20) 18",
    "main (/srv/app.py:10);log (/srv/log.py:3) 1",
    "main (/srv/app.py:10) 1",
]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    if not os.access(FILL_STORE, os.X_OK):
        pytest.fail("not built: %s (ninja -C build vigil_fill_store)" % FILL_STORE)
    path = tmp_path_factory.mktemp("store") / "vigil"
    subprocess.run([FILL_STORE, str(path)], check=True, capture_output=True, timeout=60)
    return str(path)


def vigil_ok(*args):
    return run_vigil(*args, check=True).stdout


def query(store, *args):
    return json.loads(vigil_ok("query", "--store", store, "--json", *args))


def txns(store, *args):
    return [entry["txn"] for entry in query(store, *args)]


def assert_one_line(result, code, *fragments):
    assert result.returncode == code, (result.returncode, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("vigil: ")
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert result.stdout == ""


def test_show_prints_the_request(store):
    text = vigil_ok("show", "known_einstein_0001", "--store", store)
    fields = dict(re.findall(r"^(\w+) +(.*)$", text.split("\n\n")[0], re.M))
    assert fields["txn"] == "known_einstein_0001"
    assert fields["name"] == "GET /report"
    assert fields["user"] == "admin"
    assert fields["service"] == "fill (pid 4242, thread 4243)"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", fields["started"])
    assert fields["duration"] == "2.500 s"
    assert fields["cpu"] == "1.200 s"
    assert fields["outcome"] == "error (HTTP 500)"
    assert fields["attributes"] == "db_pid=1234 tenant=acme"
    assert fields["samples"] == "200 (profile kept)"


def test_show_prints_the_call_tree_with_percentages(store):
    text = vigil_ok("show", "known_einstein_0001", "--store", store)
    tree = text.split("\n\n")[1].splitlines()
    assert tree[0] == "profile: 200 samples"
    rows = [re.match(r"^ *([\d.]+)% +([\d.]+)%  ( *)(.*)$", line).groups() for line in tree[2:-1]]
    assert rows == [
        ("100.0", "0.5", "", "main (/srv/app.py:10)"),
        ("99.0", "9.0", "  ", "handle (/srv/app.py:20)"),
        ("60.0", "60.0", "    ", "query (/srv/db.py:5)"),
        ("30.0", "30.0", "    ", "render (/srv/view.py:7)"),
    ]
    # log (0.5%) is under the 1% cut.
    assert tree[-1] == "(1 branch under 1% of the samples not shown)"


def test_show_prints_the_exception_with_locals(store):
    text = vigil_ok("show", "known_einstein_0001", "--store", store)
    exception = text.split("\n\n")[2]
    assert exception == (
        "exception: ValueError: bad quantity: -1\n"
        "Traceback (most recent call last):\n"
        '  File "/srv/app.py", line 10, in main\n'
        '  File "/srv/app.py", line 21, in handle\n'
        "      request = <Request GET /report>\n"
        '  File "/srv/forms.py", line 42, in parse\n'
        "      value = '-1'\n"
        "      password = '***'\n"
        "ValueError: bad quantity: -1\n"
    )


def test_show_a_request_without_profile_or_exception(store):
    text = vigil_ok("show", "plain_curie_0002", "--store", store)
    assert "user        -\n" in text
    assert "duration    500 µs\n" in text
    assert "samples     1 (profile not kept)\n" in text
    assert text.endswith("\nprofile: not kept\n")
    assert "exception" not in text


def test_show_writes_the_profile_as_folded_stacks(store, tmp_path):
    output = tmp_path / "profile.folded"
    result = run_vigil("show", "known_einstein_0001", "--store", store, "-o", output, "-f", "folded")
    assert result.returncode == 0, result.stderr
    assert "wrote %s (folded)" % output in result.stderr
    assert sorted(output.read_text().splitlines()) == sorted(FOLDED)


def test_show_writes_the_flame_graph_page(store, tmp_path):
    output = tmp_path / "profile.html"
    result = run_vigil("show", "known_einstein_0001", "--store", store, "-o", output)
    assert result.returncode == 0, result.stderr
    page = output.read_text()
    assert page.lstrip().lower().startswith("<!doctype html")
    assert "vigil show known_einstein_0001: GET /report" in page
    for function in ("main", "handle", "query", "render"):
        assert '"%s"' % function in page


def test_show_writes_speedscope(store, tmp_path):
    output = tmp_path / "profile.speedscope.json"
    vigil_ok("show", "known_einstein_0001", "--store", store, "-o", output, "-f", "speedscope")
    document = json.loads(output.read_text())
    assert sum(document["profiles"][0]["weights"]) == 200


def test_show_writes_a_chrome_trace(store, tmp_path):
    output = tmp_path / "profile.trace.json"
    vigil_ok("show", "known_einstein_0001", "--store", store, "-o", output, "-f", "chrome")
    spans = [event for event in json.loads(output.read_text())["traceEvents"] if event["ph"] == "X"]
    query_span = next(span for span in spans if span["name"] == "query")
    assert query_span["args"]["samples"] == 120
    # 200 samples over the request's 2.5 s: 12.5 ms each.
    assert query_span["dur"] == 120 * 12500


def test_show_unknown_transaction(store):
    result = run_vigil("show", "no_such_txn_0000", "--store", store)
    assert_one_line(result, NO_SUCH_TRANSACTION, "no transaction no_such_txn_0000", store)


def test_show_profile_of_a_request_without_one(store, tmp_path):
    output = tmp_path / "none.html"
    result = run_vigil("show", "plain_curie_0002", "--store", store, "-o", output)
    assert_one_line(result, NO_SUCH_TRANSACTION, "plain_curie_0002 has no profile")
    assert not os.listdir(tmp_path)


def test_query_lists_the_most_recent_first(store):
    text = vigil_ok("query", "--store", store)
    lines = text.splitlines()
    assert lines[0].split() == ["TXN", "START", "DURATION", "NAME", "USER", "OUTCOME"]
    assert len(lines) == 1 + 20  # the default limit
    assert lines[1].split()[0] == "plain_curie_0002"
    assert lines[2].split()[0] == "known_einstein_0001"
    assert lines[3].split()[0] == "items_001"
    assert "2.500 s  GET /report" in lines[2]
    assert lines[2].rstrip().endswith("admin        error 500")


def test_query_json_has_every_request(store):
    entries = query(store, "--limit", "0")
    assert len(entries) == 122
    report = next(entry for entry in entries if entry["txn"] == "known_einstein_0001")
    assert report["name"] == "GET /report"
    assert report["duration"] == 2.5
    assert report["cpu"] == 1.2
    assert report["http_status"] == 500
    assert report["attributes"] == {"db_pid": "1234", "tenant": "acme"}
    assert report["profile_kept"] is True
    health = next(entry for entry in entries if entry["txn"] == "plain_curie_0002")
    assert health["user"] is None


def test_query_filters(store):
    assert len(txns(store, "--since", "1h", "--limit", "0")) == 60 + 2
    assert len(txns(store, "--since", "90m", "--limit", "0")) == 90 + 2
    assert len(txns(store, "--since", "3d", "--limit", "0")) == 122
    assert len(txns(store, "--name", "GET /items", "--limit", "0")) == 100
    assert sorted(txns(store, "--name", "POST *", "--limit", "0")) == [
        "order_%02d" % j for j in range(1, 21)
    ]
    assert len(txns(store, "--user", "alice", "--limit", "0")) == 50
    assert txns(store, "--user", "") == ["plain_curie_0002"]
    errors = txns(store, "--errors", "--limit", "0")
    assert sorted(errors) == sorted(
        ["items_025", "items_050", "items_075", "items_100", "known_einstein_0001"]
        + ["order_%02d" % j for j in (4, 8, 12, 16, 20)]
    )
    assert txns(store, "--errors", "--user", "bob", "--since", "1h") == ["items_050"]


def test_query_sorting_and_limit(store):
    assert txns(store, "--sort", "slowest", "--limit", "3") == [
        "known_einstein_0001",
        "order_20",
        "order_19",
    ]
    assert txns(store, "--sort", "oldest", "--limit", "2") == ["order_20", "order_19"]
    assert txns(store, "--name", "GET /items", "--sort", "slowest", "--since", "1h",
                "--limit", "2") == ["items_060", "items_059"]


def test_query_aggregate_exact_percentiles(store):
    stats = {entry["name"]: entry for entry in query(store, "--aggregate")}
    assert stats["GET /items"] == {
        "name": "GET /items", "count": 100, "errors": 4, "p50": 0.05, "p95": 0.095, "p99": 0.099,
    }
    assert stats["POST /order"] == {
        "name": "POST /order", "count": 20, "errors": 5, "p50": 0.1, "p95": 0.19, "p99": 0.2,
    }
    assert stats["GET /report"]["p99"] == 2.5
    # Most frequent first; the filter applies before the statistics.
    assert [entry["name"] for entry in query(store, "--aggregate")][:2] == ["GET /items",
                                                                             "POST /order"]
    recent = {entry["name"]: entry for entry in query(store, "--aggregate", "--since", "1h")}
    assert recent["GET /items"]["count"] == 60
    assert recent["GET /items"]["p50"] == 0.03  # nearest rank 30 of 1..60 ms
    assert "POST /order" not in recent


def test_query_aggregate_table(store):
    lines = vigil_ok("query", "--store", store, "--aggregate").splitlines()
    assert lines[0].split() == ["NAME", "COUNT", "ERRORS", "P50", "P95", "P99"]
    assert re.match(r"GET /items +100 +4 +50\.000 ms +95\.000 ms +99\.000 ms$", lines[1])


def test_query_store_from_the_environment(store):
    env = dict(os.environ, VIGIL_STORE_DIR=store)
    result = run_vigil("query", "--json", "--name", "GET /report", env=env, check=True)
    assert [entry["txn"] for entry in json.loads(result.stdout)] == ["known_einstein_0001"]


def test_query_nothing_matches(store):
    assert vigil_ok("query", "--store", store, "--name", "nothing*") == "no stored request matches\n"
    assert query(store, "--name", "nothing*") == []


def test_missing_store(tmp_path):
    result = run_vigil("query", "--store", tmp_path / "nowhere")
    assert_one_line(result, BAD_FILE, "no vigil store in %s" % (tmp_path / "nowhere"))
    result = run_vigil("show", "known_einstein_0001", "--store", tmp_path / "nowhere")
    assert_one_line(result, BAD_FILE, "no vigil store in")


def test_corrupt_store(tmp_path):
    (tmp_path / "vigil.sqlite3").write_bytes(b"garbage" * 2000)
    result = run_vigil("query", "--store", tmp_path)
    assert_one_line(result, BAD_FILE, str(tmp_path / "vigil.sqlite3"), "not a database",
                    "move the file away")


@pytest.mark.parametrize("since", ["1x", "h", "-1h", "0m", "1.5"])
def test_bad_since(store, since):
    result = run_vigil("query", "--store", store, "--since=" + since)
    assert_one_line(result, USAGE, "--since %s:" % since, "30s, 15m, 1h or 2d")


def test_bad_sort(store):
    result = run_vigil("query", "--store", store, "--sort", "fastest")
    assert result.returncode == USAGE
