"""analyze's resume point: the complete rows of an interrupted output, read without loading it."""

from __future__ import annotations

from client.analyze import _complete_prefix, count_rows


def test_a_csv_cut_inside_a_quoted_multiline_field_resumes_after_the_last_whole_record(tmp_path):
    path = tmp_path / "out.csv"
    path.write_text('row,text\n0,"a\nb ""q"""\n1,plain\n2,"cut\nhalf')
    assert _complete_prefix(path, "csv") == 2
    assert path.read_text() == 'row,text\n0,"a\nb ""q"""\n1,plain\n'


def test_a_jsonl_cut_mid_line_loses_only_that_line(tmp_path):
    path = tmp_path / "out.jsonl"
    path.write_text('{"row": 0}\n{"row": 1}\n{"ro')
    assert _complete_prefix(path, "jsonl") == 2 and path.read_text() == '{"row": 0}\n{"row": 1}\n'


def test_rows_are_counted_with_or_without_a_final_newline(tmp_path):
    path = tmp_path / "in.txt"
    for text, rows in (("a\nb\nc", 3), ("a\nb\n", 2), ("", 0), ("\n\n", 2)):
        path.write_text(text)
        assert count_rows(path, "text") == rows
