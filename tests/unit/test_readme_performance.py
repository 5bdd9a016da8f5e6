"""docs/performance.md (the README links it) quotes only numbers from the committed results files."""

import re

from emotionaware.paths import ROOT

PAGE = ROOT / "docs" / "performance.md"


def _section() -> str:
    return PAGE.read_text()


def test_the_readme_links_the_performance_page():
    assert "docs/performance.md" in (ROOT / "README.md").read_text()


def test_performance_rows_are_copied_from_the_results_file():
    section = _section()
    source = re.search(r"`(bench/results/[^`]+\.md)`", section).group(1)
    results = (ROOT / source).read_text()
    rows = [line for line in section.splitlines() if line.startswith("| ") and not line.startswith("| ---")]
    table_rows = [
        r for r in rows if not r.startswith(("| baseline", "| configuration", "| target", "| process"))
    ]
    assert len(table_rows) >= 6
    for row in table_rows:
        assert row in results, row


def test_performance_prose_numbers_appear_in_the_results():
    """Every decimal figure in the prose is in one of the results files it names."""
    section = _section()
    files = set(re.findall(r"`(bench/results/[^`]+\.md)`", section))
    assert len(files) >= 3  # the run, the CPU graphs, the int8 run it is compared with
    results = "\n".join((ROOT / f).read_text() for f in files)
    prose = "\n".join(line for line in section.splitlines() if not line.startswith("|"))
    figures = re.findall(r"[+-]?\d+\.\d+%?", prose)
    assert len(figures) >= 10
    for figure in figures:
        assert figure in results, figure
