"""``emotionaware-client report``: the HTML page from a results file (client/report.py).

No server: small synthetic results files in each format (timestamps, speakers, conversations,
errors, truncated rows, a hostile text), the page parsed and its numbers checked against the rows,
then rendered in headless Chromium: no console errors, no requests, every chart drawn."""

from __future__ import annotations

import csv
import json
import re
import time
from collections import Counter
from datetime import datetime, timedelta
from html.parser import HTMLParser
from itertools import combinations
from pathlib import Path

import pytest

from client.report import CSP, report_main, write_report

pytestmark = pytest.mark.grpc

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ARTIFACTS = Path(__file__).resolve().parents[2] / "build" / "test-artifacts"
HOSTILE = "<script>alert(1)</script>"
HOSTILE_MESSAGE = "text is <img src=x onerror=alert(2)> too long"
LABELS = ["admiration", "anger", "joy", "love", "sadness", "neutral"]
PATTERNS = [
    ["joy", "love"],
    ["joy"],
    ["sadness"],
    ["neutral"],
    ["anger", "sadness"],
    ["admiration", "joy", "love"],
]
SECTIONS = [
    "facts",
    "distribution",
    "over-time",
    "speakers",
    "conversations",
    "examples",
    "cooccurrence",
    "errors",
]
CHART_SECTIONS = ["facts", "distribution", "over-time", "speakers", "conversations", "cooccurrence"]
ERROR_ROWS = {10, 31}
TRUNCATED_ROWS = {5, 17, 29}
N = 48


# ----------------------------------------------------------------------------------------------
# Synthetic results


def dialogue_rows() -> list[dict]:
    """48 rows over 35 hours (per-hour chart), 3 speakers, 3 conversations, multi-label."""
    start = datetime(2024, 3, 1, 8, 0)
    rows = []
    for i in range(N):
        text = HOSTILE if i == 22 else f"message {i} from the inbox"
        row = {
            "row": i,
            "id": None if i == 7 else f"m{i}",
            "timestamp": (start + timedelta(minutes=45 * i)).isoformat(),
            "speaker": ["ann", "bob", "cy"][i % 3],
            "conversation": f"c{i // 16}",
            "text": text,
            "model": "goemotions",
            "model_version": "3",
            "score_type": "sigmoid",
            "predicted": [],
            "scores": {},
            "token_count": 7 + i % 5,
            "truncated": i in TRUNCATED_ROWS,
            "error": None,
        }
        if i in ERROR_ROWS:
            message = HOSTILE_MESSAGE if i == 31 else "text is empty"
            row.update(model="", model_version="", error={"code": "INVALID_ARGUMENT", "message": message})
        else:
            predicted = PATTERNS[i % 6]
            row["predicted"] = predicted
            row["scores"] = {
                lab: (0.99 if (i == 22 and lab == "anger") else 0.5 + (i * 7 % 40) / 100)
                if lab in predicted
                else round(0.02 + (i % 9) / 100, 3)
                for lab in LABELS
            }
        rows.append(row)
    return rows


def single_label_rows() -> list[dict]:
    """Softmax, date-only timestamps over 10 days (per-day chart), no speakers or conversations."""
    rows = []
    for i in range(30):
        top = ["joy", "sadness", "neutral"][i % 3]
        scores = {lab: 0.9 if lab == top else 0.1 / 2 for lab in ["joy", "sadness", "neutral"]}
        rows.append(
            {
                "row": i,
                "id": str(i),
                "timestamp": f"2024-05-{1 + i // 3:02d}",
                "speaker": None,
                "conversation": None,
                "text": f"review {i}",
                "model": "sentiment-small",
                "model_version": "1",
                "score_type": "softmax",
                "predicted": [top],
                "scores": scores,
                "token_count": 3,
                "truncated": False,
                "error": None,
            }
        )
    return rows


def flat(rows: list[dict]) -> tuple[list[str], list[dict]]:
    """The CSV/Parquet columns of the rows."""
    labels = list(dict.fromkeys(lab for r in rows for lab in r["scores"]))
    header = [
        "row", "id", "timestamp", "speaker", "conversation", "text", "model", "model_version", "score_type",
        "predicted", "token_count", "truncated", "error_code", "error_message",
    ] + [f"score:{lab}" for lab in labels]  # fmt: skip
    out = []
    for r in rows:
        record = {k: r[k] for k in header[:9]}
        record.update(
            predicted=";".join(r["predicted"]),
            token_count=r["token_count"],
            truncated="true" if r["truncated"] else "false",
            error_code=r["error"]["code"] if r["error"] else None,
            error_message=r["error"]["message"] if r["error"] else None,
        )
        record.update({f"score:{lab}": r["scores"].get(lab) for lab in labels})
        out.append(record)
    return header, out


def write_results(rows: list[dict], path: Path) -> Path:
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    elif path.suffix == ".csv":
        header, records = flat(rows)
        with path.open("w", encoding="utf-8", newline="") as stream:
            writer = csv.DictWriter(stream, fieldnames=header)
            writer.writeheader()
            for record in records:
                writer.writerow({k: "" if v is None else v for k, v in record.items()})
    else:
        pa = pytest.importorskip("pyarrow")
        pq = pytest.importorskip("pyarrow.parquet")
        header, records = flat(rows)
        for record in records:  # predicted as list<string>, truncated as bool
            record["predicted"] = [p for p in record["predicted"].split(";") if p]
            record["truncated"] = record["truncated"] == "true"
        pq.write_table(pa.Table.from_pylist(records), path)
    return path


def expected(rows: list[dict]) -> dict:
    ok = [r for r in rows if r["error"] is None]
    counts = Counter(lab for r in ok for lab in r["predicted"])
    pairs = Counter(frozenset(p) for r in ok for p in combinations(r["predicted"], 2))
    return {"rows": len(rows), "errors": len(rows) - len(ok), "ok": ok, "counts": counts, "pairs": pairs}


def top_rows(rows: list[dict], label: str) -> list[int]:
    having = [r for r in rows if r["error"] is None and label in r["predicted"]]
    return [r["row"] for r in sorted(having, key=lambda r: (-r["scores"][label], r["row"]))[:3]]


# ----------------------------------------------------------------------------------------------
# The page as a tree (stdlib html.parser)

VOID = {"meta", "br", "img", "input", "link", "hr", "area", "base", "col", "embed", "source", "track", "wbr"}


class Node:
    def __init__(self, tag: str, attrs: dict, parent: Node | None) -> None:
        self.tag, self.attrs, self.parent, self.children = tag, attrs, parent, []

    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)

    def all(self, tag: str | None = None, **attrs: str) -> list[Node]:
        found = []
        for child in self.children:
            if isinstance(child, Node):
                if (tag is None or child.tag == tag) and all(
                    child.attrs.get(k.replace("_", "-")) == v for k, v in attrs.items()
                ):
                    found.append(child)
                found.extend(child.all(tag, **attrs))
        return found

    def one(self, tag: str | None = None, **attrs: str) -> Node:
        found = self.all(tag, **attrs)
        assert len(found) == 1, (tag, attrs, len(found))
        return found[0]


class Tree(HTMLParser):
    def __init__(self, page: str) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#root", {}, None)
        self.at = self.root
        self.tags: list[tuple[str, dict]] = []
        self.feed(page)
        self.close()

    def handle_starttag(self, tag, attrs):
        node = Node(tag, dict(attrs), self.at)
        self.tags.append((tag, node.attrs))
        self.at.children.append(node)
        if tag not in VOID:
            self.at = node

    def handle_startendtag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self.at.children.append(Node(tag, dict(attrs), self.at))

    def handle_endtag(self, tag):
        node = self.at
        while node is not None and node.tag != tag:
            node = node.parent
        if node is not None and node.parent is not None:
            self.at = node.parent

    def handle_data(self, data):
        self.at.children.append(data)


def number(text: str) -> int:
    return int(re.sub(r"[^\d]", "", text))


def check_self_contained(page: str, tree: Tree) -> None:
    assert not re.search(r"(?i)https?:|//[a-z0-9]|@import|url\(", page)
    for tag, attrs in tree.tags:
        assert tag not in ("script", "link", "img", "iframe", "object", "embed", "base", "form"), tag
        assert not any(k.startswith("on") for k in attrs), (tag, attrs)
        for key in ("src", "srcset", "action", "data", "xlink:href"):
            assert key not in attrs, (tag, attrs)
        if "href" in attrs:
            assert attrs["href"].startswith("#"), attrs
    csp = [a for t, a in tree.tags if t == "meta" and a.get("http-equiv") == "Content-Security-Policy"]
    assert csp and csp[0]["content"] == CSP


# ----------------------------------------------------------------------------------------------
# Tests


@pytest.fixture
def dialogue(tmp_path: Path) -> tuple[list[dict], Path]:
    rows = dialogue_rows()
    results = write_results(rows, tmp_path / "inbox.jsonl")
    meta = {
        "input": "inbox.csv",
        "model": "goemotions",
        "model_version": "3",
        "view": "goemotions",
        "started": "2024-03-03T10:00:00Z",
        "finished": "2024-03-03T10:01:30Z",
        "rows": N,
        "errors": 2,
        "truncated": 3,
        "columns": {"text": "body", "timestamp": "sent_at"},
    }
    (tmp_path / "inbox.jsonl.meta.json").write_text(json.dumps(meta), encoding="utf-8")
    return rows, results


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".parquet"])
def test_numbers_on_the_page_match_the_results(tmp_path: Path, suffix: str) -> None:
    rows = dialogue_rows()
    results = write_results(rows, tmp_path / f"inbox{suffix}")
    out = tmp_path / "report.html"
    facts = write_report(results, out)
    want = expected(rows)
    page = out.read_text(encoding="utf-8")
    tree = Tree(page).root

    # The facts returned.
    assert (facts.rows, facts.errors, facts.truncated) == (N, 2, 3)
    assert facts.errors_by_code == {"INVALID_ARGUMENT": 2}
    assert facts.labels == tuple(LABELS)
    assert facts.counts == {lab: want["counts"][lab] for lab in LABELS}
    assert (facts.model, facts.model_version, facts.score_type, facts.multi_label) == (
        "goemotions",
        "3",
        "sigmoid",
        True,
    )
    assert (
        facts.together("joy", "love")
        == facts.together("love", "joy")
        == want["pairs"][frozenset({"joy", "love"})]
    )
    assert facts.period == "hour" and facts.periods == 36
    assert (facts.speakers, facts.conversations) == (3, 3)
    for lab in LABELS:
        assert list(facts.examples.get(lab, ())) == top_rows(rows, lab)

    # Every section, in order.
    assert [s.attrs["id"] for s in tree.all("section")] == SECTIONS

    # The run's facts.
    facts_section = tree.one("section", id="facts")
    assert number(facts_section.one("td", data_fact="rows").text()) == N
    errors = facts_section.one("td", data_fact="errors").text()
    assert errors.startswith("2 ") and "INVALID_ARGUMENT: 2" in errors
    assert facts_section.one("td", data_fact="truncated").text().startswith("3 ")
    assert "goemotions v3" in facts_section.one("td", data_fact="model").text()
    assert "2024-03-01 08:00 → 2024-03-02 19:15" in facts_section.one("td", data_fact="time_span").text()
    assert facts_section.all("svg")

    # The distribution: each label's count, shown and as data, and its share.
    bars = {
        g.attrs["data-label"]: g for g in tree.one("section", id="distribution").all("g", **{"class": "bar"})
    }
    assert set(bars) == set(LABELS)
    ok = len(want["ok"])
    for lab, g in bars.items():
        assert int(g.attrs["data-count"]) == want["counts"][lab]
        assert number(g.one("tspan", **{"class": "count"}).text()) == want["counts"][lab]
        assert g.one("tspan", **{"class": "share"}).text() == f"{want['counts'][lab] / ok * 100:.1f}%"
    shown = [
        g.attrs["data-label"] for g in tree.one("section", id="distribution").all("g", **{"class": "bar"})
    ]
    assert shown[0] == want["counts"].most_common(1)[0][0]  # most frequent first

    # Over time: per hour, every hour of the span.
    chart = tree.one("section", id="over-time").one("svg")
    assert (chart.attrs["data-unit"], chart.attrs["data-periods"]) == ("hour", "36")
    assert len(chart.all("path", data_label="joy")) == 1

    # Speakers and conversations: rows per name.
    speakers = {
        tr.attrs["data-name"]: int(tr.attrs["data-rows"])
        for tr in tree.one("section", id="speakers").all("tr")
        if "data-name" in tr.attrs
    }
    assert speakers == Counter(r["speaker"] for r in rows)
    convs = tree.one("section", id="conversations").all("tr")
    assert {
        tr.attrs["data-name"]: int(tr.all("td")[1].text().split()[0])
        for tr in convs
        if "data-name" in tr.attrs
    } == {"c0": 16, "c1": 16, "c2": 16}
    assert len(tree.one("section", id="speakers").all("svg")) == 3

    # Top examples: highest score first; the hostile text tops anger, escaped.
    examples = tree.one("section", id="examples")
    for lab in LABELS:
        items = examples.one("ol", data_label=lab).all("li")
        assert [int(li.attrs["data-row"]) for li in items] == top_rows(rows, lab)
        scores = [float(li.attrs["data-score"]) for li in items]
        assert scores == sorted(scores, reverse=True)
    anger = examples.one("ol", data_label="anger").all("li")
    assert anger[0].one("span", **{"class": "text"}).text() == HOSTILE

    # Co-occurrence: the known pair, both ways, as data and as the number in the cell.
    heat = tree.one("section", id="cooccurrence")
    joy_love = want["pairs"][frozenset({"joy", "love"})]
    assert joy_love == 16  # rows 0, 6, … (joy+love) and 5, 11, … (admiration+joy+love), less none
    for a, b in (("joy", "love"), ("love", "joy")):
        cell = heat.one("g", data_a=a, data_b=b)
        assert int(cell.attrs["data-count"]) == joy_love
        assert cell.one("text").text() == str(joy_love)
    assert int(heat.one("g", data_a="anger", data_b="joy").attrs["data-count"]) == 0
    assert (
        int(heat.one("g", data_a="sadness", data_b="sadness").attrs["data-count"])
        == want["counts"]["sadness"]
    )
    first_pair = heat.one("table").all("tr")[1]
    assert {first_pair.attrs["data-a"], first_pair.attrs["data-b"]} == {"joy", "love"}

    # Errors: the failed rows, their code and message (escaped).
    error_rows = tree.one("section", id="errors").all("tr")[1:]
    assert [int(tr.attrs["data-row"]) for tr in error_rows] == sorted(ERROR_ROWS)
    assert error_rows[1].all("td")[2].text() == "INVALID_ARGUMENT"
    assert error_rows[1].all("td")[3].text() == HOSTILE_MESSAGE

    # Self-contained and escaped.
    check_self_contained(page, Tree(page))
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<script" not in page.lower() and "<img" not in page.lower()


def test_meta_file_is_used(dialogue, tmp_path: Path) -> None:
    _, results = dialogue
    facts = write_report(results, tmp_path / "r.html", title="Inbox <week 9>")
    assert facts.meta_used and facts.input == "inbox.csv" and facts.view == "goemotions"
    page = (tmp_path / "r.html").read_text(encoding="utf-8")
    tree = Tree(page).root
    facts_section = tree.one("section", id="facts")
    assert facts_section.one("td", data_fact="input").text() == "inbox.csv"
    assert facts_section.one("td", data_fact="view").text() == "goemotions"
    assert "1 min" in facts_section.one("td", data_fact="run").text()
    assert "text ← body" in facts_section.one("td", data_fact="columns").text()
    assert tree.one("h1").text() == "Inbox <week 9>" and "Inbox &lt;week 9&gt;" in page
    assert not facts.notes


def test_single_label_without_dialogue(tmp_path: Path) -> None:
    rows = single_label_rows()
    results = write_results(rows, tmp_path / "reviews.csv")
    assert report_main([str(results)]) == 0
    page = (tmp_path / "reviews.html").read_text(encoding="utf-8")
    tree = Tree(page).root
    assert [s.attrs["id"] for s in tree.all("section")] == SECTIONS
    assert "does not apply" in tree.one("section", id="cooccurrence").text().lower()
    assert not tree.one("section", id="cooccurrence").all("svg")
    chart = tree.one("section", id="over-time").one("svg")
    assert (chart.attrs["data-unit"], chart.attrs["data-periods"]) == ("day", "10")
    assert "no speaker" in tree.one("section", id="speakers").text()
    assert "No errors" in tree.one("section", id="errors").text()
    counts = {g.attrs["data-label"]: int(g.attrs["data-count"]) for g in tree.all("g", **{"class": "bar"})}
    assert counts == {"joy": 10, "sadness": 10, "neutral": 10}
    check_self_contained(page, Tree(page))


def test_bad_input(tmp_path: Path, capsys) -> None:
    assert report_main([str(tmp_path / "missing.jsonl")]) == 2
    (tmp_path / "x.txt").write_text("hello", encoding="utf-8")
    assert report_main([str(tmp_path / "x.txt")]) == 2
    (tmp_path / "bad.jsonl").write_text('{"row": 0, "text": "a"}\nnot json\n', encoding="utf-8")
    assert report_main([str(tmp_path / "bad.jsonl")]) == 2
    assert "line 2" in capsys.readouterr().err


def test_hundred_thousand_rows_in_seconds(tmp_path: Path) -> None:
    base = dialogue_rows()
    lines = []
    start = datetime(2024, 1, 1)
    for i in range(100_000):
        r = dict(base[i % N], row=i, speaker=f"agent-{i % 250}", conversation=f"t{i // 40}")
        r["timestamp"] = (start + timedelta(minutes=4 * i)).isoformat()
        lines.append(json.dumps(r))
    results = tmp_path / "big.jsonl"
    results.write_text("\n".join(lines) + "\n", encoding="utf-8")
    began = time.perf_counter()
    facts = write_report(results, tmp_path / "big.html")
    took = time.perf_counter() - began
    assert facts.rows == 100_000 and facts.period == "day"
    assert (tmp_path / "big.html").stat().st_size < 2_000_000
    assert took < 30, took  # a few seconds on an idle core; generous for shared CI


@pytest.mark.skipif(
    not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()),
    reason=f"needs Debian's chromium and chromedriver ({CHROMIUM}, {CHROMEDRIVER})",
)
def test_renders_in_chromium_without_requests(dialogue, tmp_path: Path) -> None:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    _, results = dialogue
    out = tmp_path / "report.html"
    write_report(results, out, title="Support inbox, March")
    url = out.resolve().as_uri()

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,900"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        driver.get(url)
        sizes = driver.execute_script(
            "return Object.fromEntries(arguments[0].map(id => [id, Array.from("
            "document.querySelectorAll('#' + id + ' svg'), s => {const r = s.getBoundingClientRect();"
            " return [r.width, r.height];})]));",
            CHART_SECTIONS,
        )
        # The whole page in the viewport: the window's height is the page's plus the browser's frame.
        for _ in range(3):
            height, frame = driver.execute_script(
                "return [document.documentElement.scrollHeight, window.outerHeight - window.innerHeight];"
            )
            if driver.execute_script("return window.innerHeight;") >= height:
                break
            driver.set_window_size(1280, height + frame)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        (ARTIFACTS / "report.html").write_text(out.read_text(encoding="utf-8"), encoding="utf-8")
        driver.save_screenshot(str(ARTIFACTS / "report.png"))
        console = driver.get_log("browser")
        performance = driver.get_log("performance")
    finally:
        driver.quit()

    assert not [e["message"] for e in console if e["level"] == "SEVERE"]
    requested = []
    for entry in performance:
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            requested.append(message["params"]["request"]["url"])
    assert requested and all(u == url for u in requested), requested
    for section in CHART_SECTIONS:
        assert sizes[section], section
        for width, height in sizes[section]:
            assert width > 0 and height > 0, (section, width, height)
