"""What a finished job attempt means, by GitLab's rules: whether its failure is allowed, whether
it runs again (`retry`), whether it uploads artifacts or a cache (`when`), and its coverage."""

from __future__ import annotations

import re
from typing import Literal

from conveyor.ci.select.expr import translate_re2
from conveyor.errors import ExprError
from conveyor.model.pipeline import JobRun, JobSpec

UploadWhen = Literal["on_success", "on_failure", "always"]  # artifacts:when, cache:when

_RETRY_REASONS = {
    "script_failure",
    "job_execution_timeout",
    "runner_system_failure",
    "unknown_failure",
    "stuck_or_timeout_failure",
    "api_failure",
    "scheduler_failure",
}


def when_applies(when: UploadWhen, job_succeeded: bool) -> bool:
    """`artifacts:when` / `cache:when`: whether a job that ended this way uploads."""
    if when == "always":
        return True
    return job_succeeded if when == "on_success" else not job_succeeded


def allowed_failure(job: JobRun, exit_code: int | None) -> bool:
    """Whether a failed job may fail. GitLab: `allow_failure: {exit_codes}` means allow_failure
    false, except that a failure with one of those codes turns it on (Ci::Build#drop)."""
    return job.allow_failure or (
        exit_code is not None and exit_code in job.allow_failure_exit_codes
    )


def should_retry(spec: JobSpec, attempt: int, reason: str, exit_code: int | None) -> bool:
    """GitLab's retry rule: attempts left, a matching `when`, a matching exit code if given."""
    if attempt > spec.retry.max:
        return False
    whens = set(spec.retry.when)
    if "always" not in whens and reason not in whens:
        return False
    if reason == "stuck_or_timeout_failure" or reason not in _RETRY_REASONS:
        return "always" in whens or reason in whens
    return not spec.retry.exit_codes or exit_code in spec.retry.exit_codes


def coverage_of(pattern: str | None, log: str) -> float | None:
    """GitLab's `coverage: /regex/` (Gitlab::Ci::Trace::Stream#extract_coverage): lines are
    searched from the last; on the last line with a match, the last captured group of the last
    match (the whole match when the regex has no group) holds the number, its first one."""
    if not pattern:
        return None
    body = pattern.strip()
    if body.startswith("/") and body.rfind("/") > 0:
        body = body[1 : body.rfind("/")]
    try:
        translate_re2(body)  # a pattern RE2 (GitLab's engine) refuses gives no coverage
        regex = re.compile(body)  # Python's own engine keeps the capture groups
    except (ExprError, re.error):
        return None
    for line in reversed(log.splitlines()):
        found = regex.findall(line)
        if not found:
            continue
        last = found[-1]
        text = last[-1] if isinstance(last, tuple) else last
        number = re.search(r"\d+(?:\.\d+)?", text)
        if number:
            return float(number.group(0))
    return None
