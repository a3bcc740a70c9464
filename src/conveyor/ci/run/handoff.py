"""What moves between a pipeline's jobs: each attempt gets a fresh copy of the checkout, the
artifacts and dotenv variables of the jobs it depends on, and its caches; afterwards its
reports are read, its artifacts stored and its caches saved (per `when` and `policy`)."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from conveyor.ci.run.artifacts import ArtifactStore
from conveyor.ci.run.attempt import Attempt
from conveyor.ci.run.blobs import BlobStore
from conveyor.ci.run.cache import CacheKeys, CacheStore, cache_keys
from conveyor.ci.run.records import PipelineRecorder
from conveyor.ci.run.reports import TestReport, parse_dotenv_reports, parse_junit_reports
from conveyor.ci.run.workspace import checkout_files, copy_checkout
from conveyor.ci.select.outcome import when_applies
from conveyor.ci.select.variables import expand
from conveyor.errors import ConveyorError
from conveyor.model.pipeline import CacheSpec, JobRun, PipelineSpec

Say = Callable[[str], None]


def artifact_sources(
    job: JobRun, stages: Mapping[str, str], stage_order: Mapping[str, int]
) -> list[str]:
    """The jobs whose artifacts `job` receives, as GitLab's Ci::BuildDependencies picks them:
    its `needs` with artifacts (a job with `needs`), else every job of an earlier stage;
    `dependencies`, when given, narrows that set. So a same-stage job named in `dependencies`
    but not in `needs` gives nothing: the job does not wait for it. `stages` maps every job
    of the pipeline to its stage, `stage_order` each stage to its position."""
    if job.needs is not None:
        base = [n.job for n in job.needs if n.artifacts]
    else:
        mine = stage_order.get(job.stage, 0)
        base = [name for name, stage in stages.items() if stage_order.get(stage, 0) < mine]
    if job.dependencies is None:
        return base
    return [name for name in job.dependencies if name in base]


class JobFiles:
    def __init__(
        self, state_dir: Path, project_dir: Path, *, protected_ref: bool, records: PipelineRecorder
    ) -> None:
        self.project_dir = project_dir
        self.protected_ref = protected_ref
        self.records = records
        blobs = BlobStore(state_dir / "blobs")
        self.artifacts = ArtifactStore(state_dir / "artifacts", blobs)
        self.caches = CacheStore(state_dir / "cache", blobs)
        self._checkout: list[str] | None = None  # the checkout's files, listed once
        self._stage_order: dict[str, int] = {}
        self._stages: dict[str, str] = {}  # JobRun name -> stage, for artifact passing
        self._dotenv: dict[str, dict[str, str]] = {}  # JobRun name -> dotenv report variables

    def begin(self, spec: PipelineSpec, jobs: Sequence[JobRun]) -> None:
        """Before the first job: list the checkout once, and drop expired artifacts."""
        self._checkout = checkout_files(self.project_dir)
        self._stage_order = {s: i for i, s in enumerate(spec.stages)}
        self._stages = {j.name: j.stage for j in jobs}
        self._expire()

    def _expire(self) -> None:
        """Drop artifacts past their `expire_in`, then blobs nothing refers to any more."""
        report = self.artifacts.expire(time.time())
        if report.removed:
            live = self.artifacts.live_digests() | self.caches.live_digests()
            self.artifacts.blobs.gc(live)

    def restore_dotenv(
        self, spec: PipelineSpec, jobs: Sequence[JobRun], ids: Mapping[str, int]
    ) -> None:
        """A rerun of a stored pipeline: the dotenv variables its jobs (`ids`: name -> the
        latest attempt's id) reported, read back from their kept artifacts (the report is
        stored with them); a job whose artifacts expired gives none."""
        for job in jobs:
            art = spec.jobs[job.spec].artifacts
            jid = ids.get(job.name)
            if art is None or not art.reports_dotenv or jid is None:
                continue
            manifest = self.artifacts.get(str(jid))
            if manifest is None:
                continue
            with tempfile.TemporaryDirectory(prefix="conveyor-dotenv-") as scratch:
                try:
                    self.artifacts.restore(manifest, Path(scratch))
                    self._dotenv[job.name] = parse_dotenv_reports(Path(scratch), art.reports_dotenv)
                except ConveyorError:
                    continue  # as at the first run: a bad report gives no variables

    def sources(self, job: JobRun) -> list[str]:
        """Jobs whose artifacts (and dotenv variables) this job receives."""
        return artifact_sources(job, self._stages, self._stage_order)

    def dotenv_for(self, job: JobRun) -> dict[str, str]:
        """The dotenv report variables of the jobs `job` receives artifacts from."""
        dotenv: dict[str, str] = {}
        for dep in self.sources(job):
            dotenv.update(self._dotenv.get(dep, {}))
        return dotenv

    # --- before the script -------------------------------------------------------------------

    def prepare(self, attempt: Attempt, say: Say) -> None:
        """The workspace: the checkout (unless GIT_STRATEGY none), artifacts, caches."""
        ws = attempt.workspace
        if attempt.env.get("GIT_STRATEGY") == "none":
            # GitLab does not touch the repository: a fresh runner's build dir stays empty
            # (artifacts and caches are still restored below).
            ws.mkdir(parents=True, exist_ok=True)
            say("  GIT_STRATEGY none: no checkout")
        else:
            n = copy_checkout(self.project_dir, ws, self._checkout)
            say(f"  {n} files from {self.project_dir}")
        for dep in self.sources(attempt.job):
            jid = self.records.job_id(dep)
            manifest = self.artifacts.get(str(jid)) if jid is not None else None
            if manifest is not None:
                rep = self.artifacts.restore(manifest, ws)
                say(f"  artifacts of {dep}: {rep.files} files")
        for i, cache in enumerate(attempt.spec.cache):
            try:
                keys = self._keys(attempt, i, cache)
                res = self.caches.restore(cache, keys, ws)
                say(f"  cache {keys.key}: {res.outcome}")
            except ConveyorError as e:
                say(f"  cache skipped: {e}")

    def _keys(self, attempt: Attempt, index: int, cache: CacheSpec) -> CacheKeys:
        return cache_keys(
            cache.model_copy(update={"key": expand(cache.key, attempt.env)}),
            index=index,
            protected_ref=self.protected_ref,
            workspace=attempt.workspace,
        )

    # --- after the script ----------------------------------------------------------------------

    def collect(self, attempt: Attempt, succeeded: bool, say: Say) -> TestReport | None:
        """Reports, artifacts and caches of a finished attempt; the JUnit counts if any."""
        tests = self._reports(attempt, say)
        self._artifacts(attempt, succeeded, say)
        self._save_caches(attempt, succeeded, say)
        return tests

    def _reports(self, attempt: Attempt, say: Say) -> TestReport | None:
        art, ws = attempt.spec.artifacts, attempt.workspace
        tests: TestReport | None = None
        if art is None:
            return None
        if art.reports_junit:
            try:
                tests = parse_junit_reports(ws, art.reports_junit)
                say(
                    f"JUnit: {tests.total} tests, {tests.failed} failed, "
                    f"{tests.errors} errors, {tests.skipped} skipped"
                )
            except ConveyorError as e:
                say(f"WARNING: JUnit report: {e}")
        if art.reports_dotenv:
            try:
                self._dotenv[attempt.job.name] = parse_dotenv_reports(ws, art.reports_dotenv)
            except ConveyorError as e:
                say(f"WARNING: dotenv report: {e}")
        return tests

    def _artifacts(self, attempt: Attempt, succeeded: bool, say: Say) -> None:
        art = attempt.spec.artifacts
        if art is None or not when_applies(art.when, succeeded):
            return
        if not (art.paths or art.untracked or art.reports_junit):
            return
        named = (*art.paths, *art.reports_junit, *art.reports_dotenv)
        spec = art.model_copy(update={"paths": tuple(expand(p, attempt.env) for p in named)})
        try:
            res = self.artifacts.collect(str(attempt.job_id), attempt.workspace, spec)
            say(f"Uploading artifacts: {res.manifest.files} files")
            for w in res.warnings:
                say(f"WARNING: {w}")
            self.records.job_artifacts(attempt.job_id, res.manifest.files, res.manifest.size)
        except ConveyorError as e:
            say(f"WARNING: artifacts: {e}")

    def _save_caches(self, attempt: Attempt, succeeded: bool, say: Say) -> None:
        for i, cache in enumerate(attempt.spec.cache):
            try:
                keys = self._keys(attempt, i, cache)
                res = self.caches.save(
                    cache,
                    keys,
                    attempt.workspace,
                    job_succeeded=succeeded,
                    job_id=str(attempt.job_id),
                    now=time.time(),
                )
                if res.outcome != "skipped":
                    say(f"Saving cache {keys.key}: {res.outcome}")
            except ConveyorError as e:
                say(f"WARNING: cache not saved: {e}")
