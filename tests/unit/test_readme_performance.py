"""The README's performance section quotes only numbers from the committed results files."""

import re

from tests.conftest import ROOT


def test_performance_rows_are_copied_from_the_results_file():
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Performance") : readme.index("## Layout")]
    source = re.search(r"`(bench/results/[^`]+\.md)`", section).group(1)
    results = (ROOT / source).read_text()
    rows = [line for line in section.splitlines() if line.startswith("| ") and not line.startswith("| ---")]
    table_rows = [r for r in rows if not r.startswith(("| baseline", "| configuration"))]
    assert len(table_rows) >= 6
    for row in table_rows:
        assert row in results, row


def test_performance_prose_numbers_appear_in_the_results():
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Performance") : readme.index("## Layout")]
    results = (ROOT / "bench/results/2026-11-26-vm.md").read_text()
    soak = (ROOT / "bench/results/2026-11-26-vm-soak.md").read_text()
    for ratio in ("2.99", "0.56", "0.72", "0.76", "0.44", "0.53", "2.39", "0.22", "0.71", "3.01"):
        assert f"{ratio}" in section and ratio in results
    assert "+5.8%" in section and "+5.8%" in soak
