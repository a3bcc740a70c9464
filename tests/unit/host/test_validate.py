"""conveyor.host.validate with the real `haproxy -c` on files the pure renderer produced."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from conveyor.errors import CommandError, ValidationFailed
from conveyor.host.validate import check, validate
from conveyor.model.endpoint import Endpoint
from conveyor.render.haproxy import VALIDATOR, render
from conveyor.render.validator import Validator
from conveyor.router.protocol import Frontend, RouterConfig, ServerEntry

needs_haproxy = pytest.mark.skipif(
    shutil.which("haproxy") is None, reason="haproxy not installed (conveyor bootstrap)"
)


def rendered(tmp_path: Path, weight: int) -> Path:
    config = RouterConfig(
        frontends=(
            Frontend(
                service="web",
                port=18555,
                check_path="/health",
                servers=(ServerEntry(name="a", endpoint=Endpoint.loopback(20555), weight=weight),),
            ),
        )
    )
    path = tmp_path / "haproxy.cfg"
    path.write_text(render(config, tmp_path))
    return path


@needs_haproxy
def test_the_renderers_output_passes_its_own_validator(tmp_path: Path) -> None:
    verdict = validate(VALIDATOR, rendered(tmp_path, weight=10))
    assert verdict.ok
    assert verdict.messages == ()
    assert verdict.validator == "HAProxy"


@needs_haproxy
def test_a_rejected_file_gives_the_validators_own_messages(tmp_path: Path) -> None:
    path = rendered(tmp_path, weight=300)  # HAProxy accepts weights 0-256

    verdict = check(VALIDATOR, path)
    assert not verdict.ok
    assert any("weight of server a is not within" in m for m in verdict.messages)
    assert not any(m.startswith("[ALERT]") for m in verdict.messages)  # prefixes dropped

    with pytest.raises(ValidationFailed, match="HAProxy rejected") as caught:
        validate(VALIDATOR, path)
    assert caught.value.messages == verdict.messages
    assert str(path) in str(caught.value)


def test_a_missing_validator_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "haproxy.cfg"
    path.write_text("global\n")
    with pytest.raises(CommandError, match="no-such-haproxy is not installed") as caught:
        check(VALIDATOR, path, program="no-such-haproxy")
    assert "`conveyor bootstrap` installs HAProxy" in str(caught.value)


def test_the_validator_value_places_the_file_and_reads_messages() -> None:
    assert VALIDATOR.command("/x/h.cfg") == ("haproxy", "-c", "-f", "/x/h.cfg")
    assert VALIDATOR.command("/x/h.cfg", "/opt/haproxy")[0] == "/opt/haproxy"
    output = "[NOTICE]   (1) : version\n[ALERT]    (1) : config : bad thing\n"
    assert VALIDATOR.messages(output) == ("config : bad thing",)
    assert VALIDATOR.messages("no alert here\n") == ("no alert here",)
    plain = Validator("promtool", ("promtool", "check", "config", "{file}"))
    assert plain.messages("  FAILED: x\n") == ("FAILED: x",)
    with pytest.raises(ValueError, match=r"no \{file\}"):
        Validator("broken", ("tool", "--check"))
