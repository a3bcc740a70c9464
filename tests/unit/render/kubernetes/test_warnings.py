"""What Kubernetes cannot do as the compose file says is a warning naming file:line, and
x-conveyor.autoscale's mistakes are errors naming file:line."""

from __future__ import annotations

from pathlib import Path

import pytest

from conveyor.errors import SpecError, SpecErrors
from conveyor.spec.compose import load_compose
from tests.unit.render.kubernetes.conftest import CASES, render_case


def _line_of(directory: Path, needle: str) -> int:
    lines = (directory / "compose.yaml").read_text(encoding="utf-8").splitlines()
    return next(n for n, line in enumerate(lines, 1) if needle in line)


@pytest.mark.parametrize(
    ("needle", "field", "says"),
    [
        ("user: root", "services.app.user", "runs as root"),
        ("privileged: true", "services.app.privileged", "privileged"),
        ("cap_add:", "services.app.cap_add", "NET_ADMIN, SYS_TIME"),
        ("./data:/srv/data", "services.app.volumes[0]", "bind mount at /srv/data"),
        ("stop_signal: SIGINT", "services.app.stop_signal", "SIGINT"),
        ("network_mode: host", "services.agent.network_mode", "hostNetwork is not rendered"),
        ('ports: ["9000:9000"]', "services.app.ports", "published TCP port 9000"),
        ("depends_on:", "services.app.depends_on", "does not wait for the Job migrate"),
        ("read_only: false", "services.app.read_only", "stays writable"),
    ],
)
def test_what_kubernetes_cannot_express_is_warned_at_its_line(
    needle: str, field: str, says: str
) -> None:
    directory = CASES["corpus-jobs-and-risks"]
    warnings = render_case(directory).warnings
    line = _line_of(directory, needle)
    matching = [w for w in warnings if w.field == field and says in w.message]
    assert matching, [w.render() for w in warnings]
    assert matching[0].file == "compose.yaml"
    assert matching[0].line == line
    assert matching[0].render().startswith(f"compose.yaml:{line}: {field}: ")


def test_a_secure_file_gets_no_security_warning() -> None:
    warnings = render_case(CASES["corpus-web-db"]).warnings
    risky = ("root", "privileged", "cap_add", "bind mount")
    assert not [w for w in warnings if any(word in w.message for word in risky)]


def _load(tmp_path: Path, autoscale: str) -> None:
    (tmp_path / "compose.yaml").write_text(
        f"services:\n  web:\n    image: web:1\n    x-conveyor:\n      autoscale: {autoscale}\n",
        encoding="utf-8",
    )
    load_compose([Path("compose.yaml")], "p", {}, cwd=tmp_path)


@pytest.mark.parametrize(
    ("written", "message"),
    [
        (
            "{min: 3, max: 2, cpu: 50%}",
            "compose.yaml:5: services.web.x-conveyor.autoscale.max: "
            "must be at least min (3), got 2",
        ),
        ("{min: 1, max: 4}", "compose.yaml:5: services.web.x-conveyor.autoscale: needs a target"),
        ("{min: 0, max: 4, cpu: 50}", "services.web.x-conveyor.autoscale.min: must be at least 1"),
        ("{min: 1, max: 4, cpu: 150%}", "autoscale.cpu: must be between 1% and 100%"),
        ("{min: 1, max: 4, rps: -3}", "autoscale.rps: must be above 0"),
        ("{min: 1, max: 4, memory: 50%}", "compose.yaml:5: services.web.x-conveyor.autoscale"),
    ],
)
def test_autoscale_mistakes_name_file_line_and_field(
    tmp_path: Path, written: str, message: str
) -> None:
    with pytest.raises((SpecError, SpecErrors)) as caught:
        _load(tmp_path, written)
    assert message in str(caught.value)


def test_autoscale_is_read_into_the_model(tmp_path: Path) -> None:
    (tmp_path / "compose.yaml").write_text(
        "services:\n  web:\n    image: web:1\n    x-conveyor:\n"
        "      autoscale: {min: 2, max: 9, cpu: '60%', rps: 12.5}\n",
        encoding="utf-8",
    )
    stack = load_compose([Path("compose.yaml")], "p", {}, cwd=tmp_path).stack
    scale = stack.services["web"].autoscale
    assert scale is not None
    assert (scale.min, scale.max, scale.cpu, scale.rps) == (2, 9, 60, 12.5)
