"""JUnit and dotenv reports, parsed the way GitLab parses them."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conveyor.ci.run.reports import (
    parse_dotenv,
    parse_dotenv_reports,
    parse_junit,
    parse_junit_file,
    parse_junit_reports,
)
from conveyor.errors import ReportError

FIXTURES = Path(__file__).parent / "fixtures" / "junit"

COUNTS = [
    # fixture, (total, passed, failed, errors, skipped), warnings expected
    ("pytest_testsuites.xml", (5, 2, 1, 1, 1), 0),
    ("pytest_legacy_root.xml", (2, 1, 1, 0, 0), 0),
    ("surefire.xml", (5, 2, 1, 1, 1), 0),  # flakyFailure is a pass
    ("phpunit_nested.xml", (3, 2, 1, 0, 0), 0),
    ("wrong_attributes.xml", (3, 1, 2, 0, 0), 1),  # failure outranks skipped
    ("no_attributes.xml", (3, 1, 0, 1, 1), 0),
    ("summary_only.xml", (7, 3, 2, 1, 1), 1),
    ("namespaced.xml", (2, 1, 1, 0, 0), 0),
]


@pytest.mark.parametrize(("name", "counts", "warnings"), COUNTS)
def test_junit_counts(name: str, counts: tuple[int, ...], warnings: int) -> None:
    report = parse_junit_file(FIXTURES / name)
    assert (report.total, report.passed, report.failed, report.errors, report.skipped) == counts
    assert len(report.warnings) == warnings


def test_junit_case_details() -> None:
    report = parse_junit_file(FIXTURES / "surefire.xml", source="target/TEST-CartTest.xml")
    by_name = {c.name: c for c in report.cases}
    failed = by_name["computesTotal"]
    assert (failed.status, failed.classname, failed.time) == (
        "failed",
        "com.example.shop.CartTest",
        0.004,
    )
    assert failed.message == "expected: <4> but was: <3>"
    assert failed.file == "target/TEST-CartTest.xml"
    assert failed.suite == "com.example.shop.CartTest"
    assert by_name["talksToDb"].status == "error"
    assert by_name["notYet"].message == "@Disabled"
    assert by_name["flaky"].status == "success"
    assert not report.success


def test_junit_message_falls_back_to_text() -> None:
    report = parse_junit_file(FIXTURES / "phpunit_nested.xml")
    [failed] = [c for c in report.cases if c.status == "failed"]
    assert failed.message == "Failed asserting that 3 matches expected 4."
    assert failed.suite == "Tests\\CartTest"


def test_wrong_attributes_are_named_in_a_warning() -> None:
    report = parse_junit_file(FIXTURES / "wrong_attributes.xml", source="liar.xml")
    assert report.cases[0].time == 1234.5  # Surefire's thousands separator
    assert report.warnings == (
        "liar.xml: suite 'liar' declares tests=10 (counted 3), failures=0 (counted 2)",
    )


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("malformed.xml", r"malformed.xml:4: junit: malformed XML"),
        ("billion_laughs.xml", r"billion_laughs.xml: junit: refused: .*entity"),
        ("external_entity.xml", r"external_entity.xml: junit: refused"),
        ("not_junit.xml", r"not_junit.xml: junit: root element <html>"),
    ],
)
def test_bad_junit_is_a_clear_error(name: str, message: str) -> None:
    with pytest.raises(ReportError, match=message):
        parse_junit_file(FIXTURES / name, source=name)


def test_deeply_nested_suites_do_not_exhaust_the_stack() -> None:
    depth = 20_000
    data = "<testsuites>" + "<testsuite>" * depth + '<testcase name="deep"/>'
    data += "</testsuite>" * depth + "</testsuites>"
    report = parse_junit(data.encode(), source="deep.xml")
    assert [c.name for c in report.cases] == ["deep"]


def test_missing_report_file_is_a_report_error(tmp_path: Path) -> None:
    with pytest.raises(ReportError, match="cannot read"):
        parse_junit_file(tmp_path / "absent.xml")


def test_real_pytest_output(tmp_path: Path) -> None:
    """What pytest itself writes today, not a hand-made imitation."""
    (tmp_path / "test_sample.py").write_text(
        textwrap.dedent(
            """
            import pytest

            @pytest.fixture
            def broken():
                raise RuntimeError("setup failed")

            def test_pass(): pass
            def test_fail(): assert 1 == 2
            @pytest.mark.skip(reason="later")
            def test_skip(): pass
            def test_error(broken): pass
            """
        )
    )
    out = tmp_path / "junit.xml"
    subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={out}"],
        cwd=tmp_path,
        capture_output=True,
        check=False,
    )
    report = parse_junit_file(out)
    assert (report.total, report.passed, report.failed, report.errors, report.skipped) == (
        4,
        1,
        1,
        1,
        1,
    )
    assert {c.name: c.status for c in report.cases} == {
        "test_pass": "success",
        "test_fail": "failed",
        "test_skip": "skipped",
        "test_error": "error",
    }


def test_several_files_by_glob(tmp_path: Path) -> None:
    (tmp_path / "reports" / "e2e").mkdir(parents=True)
    for src, dst in (
        ("pytest_testsuites.xml", "reports/unit.xml"),
        ("surefire.xml", "reports/e2e/TEST-Cart.xml"),
        ("phpunit_nested.xml", "other.xml"),
    ):
        (tmp_path / dst).write_bytes((FIXTURES / src).read_bytes())
    report = parse_junit_reports(tmp_path, ["reports/**/*.xml", "reports/unit.xml"])
    assert (report.total, report.failed) == (10, 2)  # each file once
    assert {c.file for c in report.cases} == {"reports/unit.xml", "reports/e2e/TEST-Cart.xml"}


def test_no_matching_junit_file_is_an_empty_report(tmp_path: Path) -> None:
    report = parse_junit_reports(tmp_path, ["*.xml"])
    assert report.total == 0
    assert report.warnings == ("junit: no files match *.xml",)


DOTENV_GOOD = [
    (b"A=1\nB=two words\n", {"A": "1", "B": "two words"}),
    (b"URL=http://x/?a=b\n", {"URL": "http://x/?a=b"}),  # first `=` splits
    (b"  KEY  =  padded  \n", {"KEY": "padded"}),
    (b"Q=\"quoted\"\nS='single'\n", {"Q": '"quoted"', "S": "'single'"}),  # quotes kept
    (b"V=$HOME\n", {"V": "$HOME"}),  # no expansion
    (b"A=1\nA=2", {"A": "2"}),  # later wins; no final newline needed
    (b"EMPTY=\n", {"EMPTY": ""}),
    (b"1ST=ok\n", {"1ST": "ok"}),  # GitLab's key rule allows a leading digit
    (b"\xef\xbb\xbfBOM=1\r\nCRLF=2\r\n", {"BOM": "1", "CRLF": "2"}),
    ("WIDE=1\n".encode("utf-16"), {"WIDE": "1"}),  # PowerShell's UTF-16
]


@pytest.mark.parametrize(("data", "expected"), DOTENV_GOOD)
def test_dotenv_good(data: bytes, expected: dict[str, str]) -> None:
    assert parse_dotenv(data, source="build.env") == expected


DOTENV_BAD = [
    (b"A=1\n\nB=2\n", r"build.env:2: dotenv: empty line"),
    (b"# comment\nA=1\n", r"build.env:1: dotenv: not KEY=VALUE"),
    (b"A=1\nnot a pair\n", r"build.env:2: dotenv: not KEY=VALUE"),
    (b'M="line one\nline two"\n', r"build.env:2: dotenv: not KEY=VALUE"),  # no multi-line
    (b"MY-VAR=1\n", r"build.env:1: dotenv: key 'MY-VAR'"),
    (b"export A=1\n", r"build.env:1: dotenv: key 'export A'"),
    (b"=value\n", r"build.env:1: dotenv: empty key"),
    (b"A=" + b"x" * 5200 + b"\n", r"build.env: dotenv: 5203 bytes"),
    ("".join(f"V{i}=1\n" for i in range(51)).encode(), r"build.env: dotenv: 51 variables"),
]


@pytest.mark.parametrize(("data", "message"), DOTENV_BAD)
def test_dotenv_bad(data: bytes, message: str) -> None:
    with pytest.raises(ReportError, match=message):
        parse_dotenv(data, source="build.env")


def test_dotenv_size_limit_is_strict() -> None:
    line = b"A=" + b"x" * (5120 - 3) + b"\n"
    assert len(line) == 5120
    with pytest.raises(ReportError, match="smaller than 5120"):
        parse_dotenv(line, source="x.env")
    just_under = b"A=" + b"x" * (5119 - 3) + b"\n"
    assert parse_dotenv(just_under, source="x.env") == {"A": "x" * 5116}


def test_dotenv_variable_limit_spans_files(tmp_path: Path) -> None:
    (tmp_path / "a.env").write_text("".join(f"A{i}=1\n" for i in range(30)))
    (tmp_path / "b.env").write_text("".join(f"B{i}=1\n" for i in range(30)))
    with pytest.raises(ReportError, match=r"b\.env: dotenv: 60 variables; at most 50"):
        parse_dotenv_reports(tmp_path, ["a.env", "b.env"])
    assert len(parse_dotenv_reports(tmp_path, ["*.env"], max_variables=60)) == 60
