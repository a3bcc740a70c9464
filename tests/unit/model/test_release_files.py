"""ServiceRelease.files: on a fleet a changed file is a changed spec (a rollout copies the
new content to the hosts); on one host (no files recorded) the hash is what it always was."""

from __future__ import annotations

from conveyor.model.release import ServiceRelease
from conveyor.model.stack import Service


def _release(files: dict[str, str]) -> ServiceRelease:
    return ServiceRelease(
        service=Service(name="web", image="web"),
        image_id="sha256:1",
        image_ref="web",
        files=files,
    )


def test_a_changed_file_changes_the_spec_hash_and_no_files_leave_it_as_before() -> None:
    one_host = _release({})
    before = ServiceRelease(
        service=Service(name="web", image="web"), image_id="sha256:1", image_ref="web"
    )
    assert one_host.spec_hash == before.spec_hash
    v1 = _release({"/p/nginx.conf": "a" * 64})
    v2 = _release({"/p/nginx.conf": "b" * 64})
    assert len({one_host.spec_hash, v1.spec_hash, v2.spec_hash}) == 3
    assert v1.spec_hash == _release({"/p/nginx.conf": "a" * 64}).spec_hash
    # A release recorded before `files` existed loads with none.
    assert ServiceRelease.model_validate_json(before.model_dump_json(exclude={"files"})).files == {}
