"""Multi-line records: tracebacks and stack traces join into one record, nothing is lost or
reordered."""

from __future__ import annotations

from conveyor.observe.logs.multiline import MAX_LINES, Group, Joiner


def run(lines: list[str]) -> list[Group[int]]:
    j: Joiner[int] = Joiner()
    out: list[Group[int]] = []
    for i, line in enumerate(lines):
        out.extend(j.feed(1000 + i, line, i))
    out.extend(j.flush())
    return out


def texts(lines: list[str]) -> list[str]:
    return [g.text for g in run(lines)]


PY_TB = [
    "Traceback (most recent call last):",
    '  File "app.py", line 3, in <module>',
    "    main()",
    '  File "app.py", line 2, in main',
    "    raise ValueError('bad')",
    "ValueError: bad",
]


def test_a_python_traceback_is_one_record() -> None:
    groups = run(["starting", *PY_TB, "next line"])
    assert [g.text for g in groups] == ["starting", "\n".join(PY_TB), "next line"]
    tb = groups[1]
    assert tb.traceback
    assert tb.ts == 1001  # the first line's stamp
    assert tb.mark == 6  # the last line's mark: the cursor moves past all of it
    assert tb.lines == 6


def test_a_chained_python_traceback_stays_one_record() -> None:
    chained = [
        *PY_TB,
        "",
        "During handling of the above exception, another exception occurred:",
        "",
        "Traceback (most recent call last):",
        '  File "app.py", line 9, in <module>',
        "    handle()",
        "KeyError: 'x'",
    ]
    assert texts([*chained, "after"]) == ["\n".join(chained), "after"]


def test_blank_lines_after_a_traceback_that_no_chain_follows_are_their_own() -> None:
    assert texts([*PY_TB, "", "later"]) == ["\n".join(PY_TB), "", "later"]


def test_a_bare_exception_name_ends_a_traceback() -> None:
    tb = ["Traceback (most recent call last):", '  File "x.py", line 1', "KeyboardInterrupt"]
    assert texts([*tb, "x"]) == ["\n".join(tb), "x"]


def test_a_java_stack_trace_is_one_record() -> None:
    java = [
        'Exception in thread "main" java.lang.IllegalStateException: boom',
        "\tat com.example.App.run(App.java:10)",
        "\tat com.example.App.main(App.java:4)",
        "Caused by: java.io.IOException: disk",
        "\tat com.example.Io.read(Io.java:7)",
        "\t... 2 more",
    ]
    assert texts(["before", *java, "after"]) == ["before", "\n".join(java), "after"]


def test_indented_lines_continue_the_line_before() -> None:
    assert texts(["config:", "  a: 1", "  b: 2", "done"]) == ["config:\n  a: 1\n  b: 2", "done"]


def test_json_lines_never_join() -> None:
    lines = ['{"msg":"a"}', '{"msg":"b"}']
    assert texts(lines) == lines
    # an indented line after a JSON line starts a record of its own
    assert texts(['{"msg":"a"}', "  indented"]) == ['{"msg":"a"}', "  indented"]


def test_a_blank_line_is_a_record_and_takes_no_continuation() -> None:
    assert texts(["", "  x"]) == ["", "  x"]


def test_a_new_traceback_ends_the_record_before() -> None:
    assert texts(["message", *PY_TB]) == ["message", "\n".join(PY_TB)]


def test_records_stop_growing_at_the_limit() -> None:
    lines = ["head"] + [f"  line {i}" for i in range(MAX_LINES + 10)]
    groups = run(lines)
    assert groups[0].lines == MAX_LINES
    assert sum(g.lines for g in groups) == len(lines)  # nothing lost


def test_an_open_record_waits_for_the_next_line() -> None:
    j: Joiner[int] = Joiner()
    assert j.feed(1, "first", 0) == []
    assert j.pending
    assert [g.text for g in j.feed(2, "second", 1)] == ["first"]
    assert [g.text for g in j.flush()] == ["second"]
    assert not j.pending


def test_every_line_comes_out_once_in_order() -> None:
    lines = [
        "a",
        *PY_TB,
        "",
        "",
        "b",
        "  c",
        '{"m":1}',
        "Caused by: x",
        "d",
        "",
        *PY_TB,
        "",
    ]
    groups = run(lines)
    assert "\n".join(g.text for g in groups) == "\n".join(lines)
    marks = [g.mark for g in groups]
    assert marks == sorted(marks)
    assert marks[-1] == len(lines) - 1
