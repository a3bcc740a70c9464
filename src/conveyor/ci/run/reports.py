"""`artifacts:reports`: JUnit test reports and dotenv variables, read the way GitLab reads them.

JUnit (GitLab's Gitlab::Ci::Parsers::Test::Junit): every `<testcase>` under a `<testsuites>` or
`<testsuite>` (nested suites included, as PHPUnit writes them) is one case. Its status comes from
its children, first match wins: `<failure>` → failed, `<error>` → error, `<skipped>` → skipped,
otherwise success (Surefire's `<flakyFailure>` and `<rerunFailure>` are passes). Totals count the
cases, not the `tests`/`failures`/`errors`/`skipped` attributes, which tools often get wrong; a
suite whose declared counts disagree with its cases gets a warning. One exception to GitLab,
which would show nothing: a suite with no `<testcase>` at all contributes its declared counts.

Parsing uses defusedxml: a report is a file a job wrote, so entity declarations (the "billion
laughs" expansion) and external entities are refused rather than expanded.

dotenv (GitLab's Ci::ParseDotenvArtifactService and Ci::JobVariable validation):

- the file must be smaller than 5 KiB, and all files together may define at most 50 variables
  (GitLab.com's Free tier; both are instance limits, hence parameters);
- every line must be `KEY=VALUE`: no blank lines, no comments, no multi-line values;
- key and value are stripped of surrounding whitespace; the key may only hold ASCII letters,
  digits and `_` (GitLab allows a leading digit);
- quotes are *not* interpreted: `A="x"` gives `"x"` with its quotes, as GitLab keeps them
  (its parser is a bare `^(.*?)=(.*)$` per line and its documentation says quotes are kept
  as-is); no `$VAR` expansion either;
- a later line overrides an earlier one with the same key.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from xml.etree.ElementTree import Element, ParseError

import defusedxml
import defusedxml.ElementTree

from conveyor.ci.run.snapshot import glob, relative_pattern
from conveyor.errors import ReportError
from conveyor.model.stack import Frozen

CaseStatus = Literal["success", "failed", "error", "skipped"]
DOTENV_MAX_BYTES = 5 * 1024
DOTENV_MAX_VARIABLES = 50
DOTENV_KEY = re.compile(r"[A-Za-z0-9_]+")
_DOTENV_LINE = re.compile(r"(.*?)=(.*)")
_RUBY_SPACE = " \t\n\v\f\r\0"  # what Ruby's String#strip removes
# A case's status comes from its first child of these kinds, in this order.
_OUTCOMES: tuple[tuple[str, CaseStatus], ...] = (
    ("failure", "failed"),
    ("error", "error"),
    ("skipped", "skipped"),
)


class TestCase(Frozen):
    __test__ = False  # not a pytest class, whatever its name

    name: str
    classname: str | None = None
    status: CaseStatus = "success"
    time: float = 0.0
    message: str | None = None  # the failure/error/skipped message or text
    suite: str | None = None
    file: str | None = None  # the report it came from


class TestReport(Frozen):
    __test__ = False

    total: int = 0
    passed: int = 0
    failed: int = 0
    errors: int = 0
    skipped: int = 0
    cases: tuple[TestCase, ...] = ()
    warnings: tuple[str, ...] = ()

    def __add__(self, other: TestReport) -> TestReport:
        return TestReport(
            total=self.total + other.total,
            passed=self.passed + other.passed,
            failed=self.failed + other.failed,
            errors=self.errors + other.errors,
            skipped=self.skipped + other.skipped,
            cases=self.cases + other.cases,
            warnings=self.warnings + other.warnings,
        )

    @property
    def success(self) -> bool:
        return self.failed == 0 and self.errors == 0


# --- JUnit ----------------------------------------------------------------------------------


def _local(tag: object) -> str:
    """The tag without a namespace: some tools write `xmlns` on the root."""
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def _float(text: str | None) -> float:
    if not text:
        return 0.0
    try:
        return float(text.replace(",", ""))  # Surefire writes 1,234.5 for long runs
    except ValueError:
        return 0.0


def _int(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def _case(elem: Element, suite: str | None, source: str) -> TestCase:
    status: CaseStatus = "success"
    message: str | None = None
    children = {_local(c.tag): c for c in reversed(list(elem))}  # first occurrence wins
    for tag, outcome in _OUTCOMES:
        child = children.get(tag)
        if child is not None:
            status = outcome
            message = child.get("message") or (child.text or "").strip() or None
            break
    return TestCase(
        name=elem.get("name", ""),
        classname=elem.get("classname"),
        status=status,
        time=_float(elem.get("time")),
        message=message,
        suite=suite,
        file=source,
    )


def _declared(elem: Element) -> dict[str, int] | None:
    counts = {k: _int(elem.get(k)) for k in ("tests", "failures", "errors", "skipped")}
    if counts["tests"] is None:
        return None
    return {k: max(v or 0, 0) for k, v in counts.items()}


@dataclass
class _Tally:
    source: str
    cases: list[TestCase] = field(default_factory=list)
    summaries: list[dict[str, int]] = field(default_factory=list)  # suites without cases
    warnings: list[str] = field(default_factory=list)

    def suite(self, elem: Element) -> list[Element]:
        """Count one suite's own cases; return its nested suites."""
        name = elem.get("name")
        own = [c for c in elem if _local(c.tag) == "testcase"]
        nested = [c for c in elem if _local(c.tag) == "testsuite"]
        mine = [_case(c, name, self.source) for c in own]
        self.cases.extend(mine)
        declared = _declared(elem) if _local(elem.tag) == "testsuite" else None
        if declared is None or nested:
            return nested
        if not own and declared["tests"]:
            self.summaries.append(declared)
            self.warnings.append(
                f"{self.source}: suite {name!r} lists no test cases; using its declared counts"
            )
        elif own:
            counted = {
                "tests": len(mine),
                "failures": sum(c.status == "failed" for c in mine),
                "errors": sum(c.status == "error" for c in mine),
                "skipped": sum(c.status == "skipped" for c in mine),
            }
            wrong = [
                f"{k}={declared[k]} (counted {counted[k]})"
                for k in counted
                if elem.get(k) is not None and declared[k] != counted[k]
            ]
            if wrong:
                self.warnings.append(f"{self.source}: suite {name!r} declares " + ", ".join(wrong))
        return nested


def parse_junit(data: bytes, *, source: str) -> TestReport:
    """One JUnit XML document; `source` names it in errors and in each case."""
    try:
        root = defusedxml.ElementTree.fromstring(data, forbid_dtd=False)
    except defusedxml.DefusedXmlException as e:
        raise ReportError(
            source, None, "junit", f"refused: {e} (entity declarations are not allowed)"
        ) from e
    except ParseError as e:
        line = e.position[0] if getattr(e, "position", None) else None
        raise ReportError(source, line, "junit", f"malformed XML: {e}") from e
    tag = _local(root.tag)
    if tag not in ("testsuites", "testsuite"):
        raise ReportError(
            source, None, "junit", f"root element <{tag}> is not <testsuites> or <testsuite>"
        )
    tally = _Tally(source)
    pending = [root]  # a stack, not recursion: a hostile file may nest suites very deep
    while pending:
        pending.extend(reversed(tally.suite(pending.pop())))
    cases, extra = tally.cases, tally.summaries
    counts = {s: sum(c.status == s for c in cases) for s in ("failed", "error", "skipped")}
    failed = counts["failed"] + sum(d["failures"] for d in extra)
    errors = counts["error"] + sum(d["errors"] for d in extra)
    skipped = counts["skipped"] + sum(d["skipped"] for d in extra)
    total = len(cases) + sum(d["tests"] for d in extra)
    return TestReport(
        total=total,
        passed=max(total - failed - errors - skipped, 0),
        failed=failed,
        errors=errors,
        skipped=skipped,
        cases=tuple(cases),
        warnings=tuple(tally.warnings),
    )


def parse_junit_file(path: Path, *, source: str | None = None) -> TestReport:
    name = source or str(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ReportError(name, None, "junit", f"cannot read: {e.strerror or e}") from e
    return parse_junit(data, source=name)


def report_files(workspace: Path, patterns: Sequence[str]) -> list[str]:
    """Files (not directories) the report globs match, relative to the workspace, in order."""
    found: list[str] = []
    for pattern in patterns:
        rel = relative_pattern(workspace, pattern, "report")
        matches = glob(workspace, rel)
        found.extend(m for m in sorted(matches) if (workspace / m).is_file() and m not in found)
    return found


def parse_junit_reports(workspace: Path, patterns: Sequence[str]) -> TestReport:
    """`artifacts:reports:junit`: every matching file, merged. No match is an empty report
    with a warning, as GitLab shows no tests rather than failing the job."""
    files = report_files(workspace, patterns)
    if not files:
        shown = ", ".join(patterns)
        return TestReport(warnings=(f"junit: no files match {shown}",))
    report = TestReport()
    for rel in files:
        report = report + parse_junit_file(workspace / rel, source=rel)
    return report


# --- dotenv ---------------------------------------------------------------------------------


def _decode(data: bytes) -> str:
    # GitLab converts the blob to UTF-8 first (PowerShell writes UTF-16LE) and strips a BOM.
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16", errors="replace")
    return data.decode("utf-8-sig", errors="replace")


def parse_dotenv(
    data: bytes,
    *,
    source: str,
    max_bytes: int = DOTENV_MAX_BYTES,
    max_variables: int = DOTENV_MAX_VARIABLES,
) -> dict[str, str]:
    """One dotenv report → variables, or ReportError at file:line."""
    if len(data) >= max_bytes:
        raise ReportError(
            source, None, "dotenv", f"{len(data)} bytes; the file must be smaller than {max_bytes}"
        )
    variables: dict[str, str] = {}
    lines = _decode(data).split("\n")  # Ruby's each_line: only \n ends a line
    if lines and lines[-1] == "":
        lines.pop()
    for number, line in enumerate(lines, start=1):
        m = _DOTENV_LINE.fullmatch(line)
        if m is None:
            why = "empty line" if not line.strip(_RUBY_SPACE) else "not KEY=VALUE"
            raise ReportError(
                source, number, "dotenv", f"{why}: GitLab accepts only KEY=VALUE lines"
            )
        key, value = m.group(1).strip(_RUBY_SPACE), m.group(2).strip(_RUBY_SPACE)
        if not key:
            raise ReportError(source, number, "dotenv", "empty key")
        if not DOTENV_KEY.fullmatch(key):
            raise ReportError(
                source, number, "dotenv", f"key {key!r} may only hold letters, digits and '_'"
            )
        variables[key] = value
    if len(variables) > max_variables:
        raise ReportError(
            source, None, "dotenv", f"{len(variables)} variables; at most {max_variables} allowed"
        )
    return variables


def parse_dotenv_reports(
    workspace: Path,
    patterns: Sequence[str],
    *,
    max_bytes: int = DOTENV_MAX_BYTES,
    max_variables: int = DOTENV_MAX_VARIABLES,
) -> dict[str, str]:
    """`artifacts:reports:dotenv`: every matching file in order (later files win); the variable
    limit applies to them together, as GitLab counts the whole report."""
    variables: dict[str, str] = {}
    for rel in report_files(workspace, patterns):
        path = workspace / rel
        try:
            data = path.read_bytes()
        except OSError as e:
            raise ReportError(rel, None, "dotenv", f"cannot read: {e.strerror or e}") from e
        variables.update(parse_dotenv(data, source=rel, max_bytes=max_bytes, max_variables=10**9))
        if len(variables) > max_variables:
            raise ReportError(
                rel, None, "dotenv", f"{len(variables)} variables; at most {max_variables} allowed"
            )
    return variables
