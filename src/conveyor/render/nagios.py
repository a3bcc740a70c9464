"""Render Nagios 4 configuration from `model.checks`, and NRPE's for remote hosts. Pure: no I/O.

Three files for one Nagios process, all under its directory (`NagiosLayout`):

    etc/nagios.cfg     the main file: paths, nagios_user, interval_length=1 (every interval
                       in the object file is in seconds), notifications on, flap detection on
    etc/objects.cfg    a 24x7 timeperiod, the commands, one contact whose notification command
                       writes each notification to Conveyor's spool (notify/), this host with
                       its checks, and each remote host with the checks NRPE runs for it
    etc/resource.cfg   $USER1$ the monitoring plugins, $USER2$ Conveyor's plugin directory,
                       $USER3$ the Python that runs Conveyor's plugin, $USER4$ the spool

Checks the monitoring-plugins package has (check_http, check_tcp, check_disk, check_load,
check_nrpe) are used as they are; Conveyor's own plugin (`observe/checks/plugin.py`, standard
library only) checks an HAProxy backend through the stats CSV, the Docker daemon and memory.

Every value that reaches a command line is an argument (`command!ARG1!ARG2`), never spliced into
the command's text; a URL path is percent-encoded so that none of `!` (argument separator), `$`
(macro), `;` (comment) or `'` (shell quote) can reach Nagios or the shell. Each check carries
custom variables `_CONVEYOR_SERVICE` and `_CONVEYOR_KIND`, so a notification says which Compose
service and which kind of check it is about. `VALIDATOR` is `nagios4 -v`.

`render_nrpe` writes the nrpe.cfg a remote host runs (`conveyor provision` installs it); no
validator exists for it (NRPE has no configuration test mode): its rendering is unit-tested,
and provisioned test hosts answer Nagios with it (tests/integration/provision).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from conveyor.model.checks import Check, ChecksSettings, NagiosObjects, RemoteHost
from conveyor.render.validator import Validator

INSTALL_HINT = (
    "install Debian's nagios4-core and monitoring-plugins-basic "
    "(scripts/install-host.sh, or `apt-get install nagios4-core monitoring-plugins-basic`)"
)

# `nagios4 -v FILE` exits 0 or 1; the reasons are on "Error: ..." lines.
VALIDATOR = Validator(
    name="Nagios",
    argv=("nagios4", "-v", "{file}"),
    message_pattern=r"^\s*Error: (?P<message>.*)$",
    install_hint=INSTALL_HINT,
)

PLUGIN_NAME = "conveyor_check.py"
MONITORING_PLUGINS = "/usr/lib/nagios/plugins"
CONTACT = "conveyor"
TIMEPERIOD = "24x7"
NONE = "-"  # a custom variable's value when there is nothing to say (an empty one is invalid)

# Characters Nagios must refuse in object names, and strip from plugin output before a
# notification command sees it (the output is single-quoted on its command line).
ILLEGAL_NAME_CHARS = "`~!$%^&*|'\"<>?,()="
ILLEGAL_OUTPUT_CHARS = "`~$&|'\"<>"

# NRPE's commands for a remote host, by check name; the last only for an edge host
# (`RemoteHost.edge`), whose HAProxy is the fleet's edge.
NRPE_COMMANDS = ("conveyor_disk", "conveyor_load", "conveyor_dockerd")
NRPE_EDGE_COMMANDS = ("conveyor_haproxy",)

_INDENT = "  "
_UNSAFE_VALUE = re.compile(r"[\x00-\x1f;!$'\"\\`]")
# What a percent-encoded URL path may keep as it is: none of ! $ ; ' or a space.
_PATH_SAFE = "/-._~:@+=,&?%"


@dataclass(frozen=True)
class NagiosLayout:
    """Where one Nagios keeps its files. `user`/`group` are nagios_user/nagios_group (None:
    left out, Nagios runs as whoever starts it); `python` runs Conveyor's plugin."""

    base: Path
    python: str
    user: str | None = None
    group: str | None = None
    plugins: str = MONITORING_PLUGINS

    @property
    def etc(self) -> Path:
        return self.base / "etc"

    @property
    def var(self) -> Path:
        return self.base / "var"

    @property
    def rw(self) -> Path:
        return self.base / "rw"

    @property
    def results(self) -> Path:
        return self.base / "results"  # check_result_path

    @property
    def notify(self) -> Path:
        return self.base / "notify"  # the notification spool

    @property
    def plugin_dir(self) -> Path:
        return self.base / "plugins"

    @property
    def main_file(self) -> Path:
        return self.etc / "nagios.cfg"

    @property
    def objects_file(self) -> Path:
        return self.etc / "objects.cfg"

    @property
    def resource_file(self) -> Path:
        return self.etc / "resource.cfg"

    @property
    def status_file(self) -> Path:
        return self.var / "status.dat"

    @property
    def lock_file(self) -> Path:
        return self.var / "nagios.lock"

    @property
    def log_file(self) -> Path:
        return self.var / "nagios.log"

    @property
    def command_file(self) -> Path:
        return self.rw / "nagios.cmd"

    @property
    def query_socket(self) -> Path:
        return self.rw / "nagios.qh"

    @property
    def writable(self) -> tuple[Path, ...]:
        """The directories Nagios writes to (owned by its user)."""
        return (self.var, self.var / "archives", self.rw, self.results, self.notify)


# ---- the main file -------------------------------------------------------------------------


def render_main(
    layout: NagiosLayout,
    objects_file: Path | None = None,
    *,
    status_update_interval: int = 1,
) -> str:
    """nagios.cfg. `objects_file` replaces the layout's (a candidate being validated)."""
    var = layout.var
    lines = [
        "# Rendered by Conveyor (conveyor.observe.checks). Do not edit: it is rewritten.",
        f"log_file={var / 'nagios.log'}",
        f"cfg_file={objects_file or layout.objects_file}",
        f"resource_file={layout.resource_file}",
        f"object_cache_file={var / 'objects.cache'}",
        f"precached_object_file={var / 'objects.precache'}",
        f"status_file={layout.status_file}",
        f"status_update_interval={status_update_interval}",
        f"state_retention_file={var / 'retention.dat'}",
        "retain_state_information=1",
        "retention_update_interval=1",
        # What this file says wins over the retained program state (notifications, checks on).
        "use_retained_program_state=0",
        f"query_socket={layout.query_socket}",
        f"command_file={layout.command_file}",
        "check_external_commands=1",
        f"check_result_path={layout.results}",
        f"lock_file={layout.lock_file}",
        f"temp_file={var / 'nagios.tmp'}",
        f"temp_path={var}",
        f"log_archive_path={var / 'archives'}",
        "log_rotation_method=d",
        "use_syslog=0",
        "log_notifications=1",
        "log_service_retries=1",
        "log_initial_states=0",
        "log_passive_checks=0",
        # Every interval in the object file is in seconds.
        "interval_length=1",
        "check_result_reaper_frequency=1",
        # Check everything at once after a start: a fresh status for `conveyor checks`.
        "service_inter_check_delay_method=n",
        "host_inter_check_delay_method=n",
        "enable_notifications=1",
        "enable_flap_detection=1",
        "enable_event_handlers=0",
        "process_performance_data=0",
        "check_for_orphaned_services=1",
        "check_for_orphaned_hosts=1",
        "date_format=iso8601",
        f"illegal_object_name_chars={ILLEGAL_NAME_CHARS}",
        f"illegal_macro_output_chars={ILLEGAL_OUTPUT_CHARS}",
    ]
    if layout.user is not None:
        lines.append(f"nagios_user={layout.user}")
    if layout.group is not None:
        lines.append(f"nagios_group={layout.group}")
    return "\n".join(lines) + "\n"


def render_resource(layout: NagiosLayout) -> str:
    """resource.cfg: the $USERn$ macros the commands use."""
    return (
        "# Rendered by Conveyor. Do not edit.\n"
        f"$USER1$={layout.plugins}\n"
        f"$USER2$={layout.plugin_dir}\n"
        f"$USER3$={layout.python}\n"
        f"$USER4$={layout.notify}\n"
    )


# ---- the object file -----------------------------------------------------------------------


def _define(kind: str, fields: list[tuple[str, object]]) -> list[str]:
    width = max(len(key) for key, _ in fields)
    body = [f"{_INDENT}{key:<{width}} {_value(value)}" for key, value in fields]
    return [f"define {kind} {{", *body, "}", ""]


def _value(value: object) -> str:
    text = str(value)
    if "\n" in text or ";" in text.replace("\\;", "") or text != text.strip() or not text:
        raise ValueError(f"not a Nagios object value: {text!r}")
    return text


def _arg(value: object) -> str:
    """One `!`-separated argument of a check_command."""
    text = str(value)
    if not text or _UNSAFE_VALUE.search(text) or text != text.strip() or " " in text:
        raise ValueError(f"not usable as a Nagios command argument: {text!r}")
    return text


def url_path(path: str | None) -> str:
    """A URL path as it may go on a Nagios command line (see the module docstring)."""
    if not path:
        return "/"
    encoded = quote(path if path.startswith("/") else f"/{path}", safe=_PATH_SAFE)
    return encoded


def name_ok(name: str) -> bool:
    """Whether Nagios accepts `name` as a host name or service description."""
    return (
        bool(name)
        and name == name.strip()
        and not any(c in ILLEGAL_NAME_CHARS or c in ";\\" or ord(c) < 32 for c in name)
    )


def _plugin(subcommand: str, args: str) -> str:
    return f"$USER3$ $USER2$/{PLUGIN_NAME} {subcommand} {args}"


def _commands(settings: ChecksSettings) -> list[str]:
    t = max(1, round(settings.timeout))
    commands = {
        "conveyor_http": f"$USER1$/check_http -I $ARG1$ -p $ARG2$ -u '$ARG3$' -t {t}",
        "conveyor_tcp": f"$USER1$/check_tcp -H $ARG1$ -p $ARG2$ -t {t}",
        "conveyor_certificate": (
            f"$USER1$/check_http -I $ARG1$ -p $ARG2$ --ssl -C $ARG3$,$ARG4$ -t {t}"
        ),
        "conveyor_haproxy": _plugin("haproxy", f"--port $ARG1$ --backend $ARG2$ --timeout {t}"),
        "conveyor_docker": _plugin("docker", f"--socket $ARG1$ --timeout {t}"),
        "conveyor_memory": _plugin("memory", "--warning $ARG1$ --critical $ARG2$"),
        "conveyor_disk": "$USER1$/check_disk -w $ARG1$% -c $ARG2$% -p $ARG3$",
        "conveyor_load": "$USER1$/check_load -r -w $ARG1$ -c $ARG2$",
        "conveyor_nrpe": f"$USER1$/check_nrpe -H $HOSTADDRESS$ -p $ARG1$ -c $ARG2$ -t {t}",
        "conveyor_nrpe_alive": f"$USER1$/check_nrpe -H $HOSTADDRESS$ -p $ARG1$ -t {t}",
        "conveyor_this_host": "$USER1$/check_dummy 0 Nagios-runs-here",
        "conveyor_notify_service": _plugin(
            "notify",
            "--spool='$USER4$' --type=$NOTIFICATIONTYPE$ --host='$HOSTNAME$' "
            "--check='$SERVICEDESC$' --state=$SERVICESTATE$ --output='$SERVICEOUTPUT$' "
            "--time=$TIMET$ --downtime=$SERVICEDOWNTIME$ --attempt=$SERVICEATTEMPT$ "
            "--service='$_SERVICECONVEYOR_SERVICE$' --kind='$_SERVICECONVEYOR_KIND$'",
        ),
        "conveyor_notify_host": _plugin(
            "notify",
            "--spool='$USER4$' --type=$NOTIFICATIONTYPE$ --host='$HOSTNAME$' "
            "--state=$HOSTSTATE$ --output='$HOSTOUTPUT$' --time=$TIMET$ "
            "--downtime=$HOSTDOWNTIME$ --attempt=$HOSTATTEMPT$",
        ),
    }
    out: list[str] = []
    for name, line in commands.items():
        out += _define("command", [("command_name", name), ("command_line", line)])
    return out


def _timeperiod() -> list[str]:
    days = ("sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday")
    return _define(
        "timeperiod",
        [("timeperiod_name", TIMEPERIOD), ("alias", "always"), *((d, "00:00-24:00") for d in days)],
    )


def _contact() -> list[str]:
    return _define(
        "contact",
        [
            ("contact_name", CONTACT),
            ("alias", "Conveyor's notification spool"),
            ("host_notification_period", TIMEPERIOD),
            ("service_notification_period", TIMEPERIOD),
            # Problems, recoveries, flapping and downtime: Conveyor records them all and
            # tells people about problems and recoveries only.
            ("host_notification_options", "d,u,r,f,s"),
            ("service_notification_options", "w,u,c,r,f,s"),
            ("host_notification_commands", "conveyor_notify_host"),
            ("service_notification_commands", "conveyor_notify_service"),
        ],
    )


def _timing(settings: ChecksSettings) -> list[tuple[str, object]]:
    return [
        ("max_check_attempts", settings.attempts),
        ("check_interval", _seconds(settings.interval)),
        ("retry_interval", _seconds(settings.retry_interval)),
        ("check_period", TIMEPERIOD),
        ("contacts", CONTACT),
        ("notification_period", TIMEPERIOD),
        ("notification_interval", 0),  # one notification per state change, no reminders
        ("first_notification_delay", 0),
    ]


def _seconds(value: float) -> str:
    return f"{value:g}"


def _check_command(check: Check, settings: ChecksSettings, docker_socket: str) -> str:
    t = settings.thresholds
    match check.kind:
        case "http":
            args: tuple[object, ...] = (check.address, check.port, url_path(check.path))
        case "tcp":
            args = (check.address, check.port)
        case "certificate":
            args = (check.address, check.port, t.certificate_warning, t.certificate_critical)
        case "haproxy":
            args = (check.port, check.backend)
        case "docker":
            args = (docker_socket,)
        case "memory":
            args = (t.memory_warning, t.memory_critical)
        case "disk":
            args = (t.disk_warning, t.disk_critical, check.path)
        case "load":
            args = (_triple(t.load_warning), _triple(t.load_critical))
        case "nrpe":
            raise ValueError("NRPE checks belong to remote hosts (render them with the host)")
    if any(a is None for a in args):
        raise ValueError(f"check {check.name!r} ({check.kind}) lacks an address, port or path")
    return "!".join([f"conveyor_{check.kind}", *(_arg(a) for a in args)])


def _triple(values: tuple[float, float, float]) -> str:
    return ",".join(f"{v:g}" for v in values)


def _service(host: str, check: Check, command: str, settings: ChecksSettings) -> list[str]:
    if not name_ok(check.name):
        raise ValueError(f"check name {check.name!r} holds characters Nagios refuses")
    return _define(
        "service",
        [
            ("host_name", host),
            ("service_description", check.name),
            ("check_command", command),
            *_timing(settings),
            ("notification_options", "w,u,c,r,f,s"),
            ("_CONVEYOR_SERVICE", check.service or NONE),
            ("_CONVEYOR_KIND", check.kind),
        ],
    )


def _host(name: str, address: str, command: str, settings: ChecksSettings) -> list[str]:
    if not name_ok(name):
        raise ValueError(f"host name {name!r} holds characters Nagios refuses")
    return _define(
        "host",
        [
            ("host_name", name),
            ("address", _arg(address)),
            ("check_command", command),
            *_timing(settings),
            ("notification_options", "d,u,r,f,s"),
        ],
    )


def remote_checks(host: RemoteHost) -> tuple[Check, ...]:
    """The checks Nagios runs on a remote host through its NRPE daemon: disk, load, dockerd,
    and an edge host's HAProxy."""
    commands = NRPE_COMMANDS + (NRPE_EDGE_COMMANDS if host.edge else ())
    return tuple(
        Check(name=command.removeprefix("conveyor_"), kind="nrpe", command=command, scope="host")
        for command in commands
    )


def check_names(objects: NagiosObjects) -> None:
    """Refuse two checks of one host with the same name (Nagios would keep one silently)."""
    seen: set[str] = set()
    for check in objects.checks:
        if check.name in seen:
            raise ValueError(f"two checks are named {check.name!r}")
        seen.add(check.name)
    hosts = {objects.host}
    for remote in objects.settings.hosts:
        if remote.name in hosts:
            raise ValueError(f"two hosts are named {remote.name!r}")
        hosts.add(remote.name)


def render_objects(objects: NagiosObjects) -> str:
    """objects.cfg: the timeperiod, commands, contact, this host and its checks, the remote
    hosts and their NRPE checks."""
    check_names(objects)
    settings = objects.settings
    lines = ["# Rendered by Conveyor (conveyor.observe.checks). Do not edit.", ""]
    lines += _timeperiod()
    lines += _commands(settings)
    lines += _contact()
    lines += _host(objects.host, objects.address, "conveyor_this_host", settings)
    for check in sorted(objects.checks, key=lambda c: c.name):
        command = _check_command(check, settings, objects.docker_socket)
        lines += _service(objects.host, check, command, settings)
    for remote in objects.settings.hosts:
        alive = f"conveyor_nrpe_alive!{_arg(remote.nrpe_port)}"
        lines += _host(remote.name, remote.address, alive, settings)
        for check in remote_checks(remote):
            command = f"conveyor_nrpe!{_arg(remote.nrpe_port)}!{_arg(check.command)}"
            lines += _service(remote.name, check, command, settings)
    return "\n".join(lines)


# ---- NRPE on a remote host -----------------------------------------------------------------


def render_nrpe(
    host: RemoteHost,
    settings: ChecksSettings,
    allowed: tuple[str, ...],
    *,
    plugins: str = MONITORING_PLUGINS,
    pid_file: str = "/run/nagios/nrpe.pid",
) -> str:
    """The nrpe.cfg of a remote host: listen on its address, answer only `allowed` (the
    Nagios servers' addresses), no arguments from the network (dont_blame_nrpe=0), and every
    command `remote_checks` may name (the edge's too, whatever the host's role)."""
    if not allowed:
        raise ValueError("NRPE must allow at least one Nagios server address")
    t = settings.thresholds
    disks = " ".join(f"-p {_arg(p)}" for p in settings.disk_paths)
    commands = {
        "conveyor_disk": f"{plugins}/check_disk -w {t.disk_warning}% -c {t.disk_critical}% {disks}",
        "conveyor_load": (
            f"{plugins}/check_load -r -w {_triple(t.load_warning)} -c {_triple(t.load_critical)}"
        ),
        "conveyor_dockerd": f"{plugins}/check_procs -c 1: -C dockerd",
        # Every provisioned host runs one HAProxy (the haproxy role); Nagios asks only an edge
        # host's, which the fleet's edge is. A process count, not its stats page: the edge the
        # fleet's router pushes to the host has no stats listener.
        "conveyor_haproxy": f"{plugins}/check_procs -c 1: -C haproxy",
    }
    lines = [
        f"# Rendered by Conveyor for {host.name}. Do not edit.",
        f"server_address={_arg(host.address)}",
        f"server_port={host.nrpe_port}",
        f"allowed_hosts={','.join(_arg(a) for a in allowed)}",
        f"pid_file={pid_file}",
        "nrpe_user=nagios",
        "nrpe_group=nagios",
        "dont_blame_nrpe=0",
        "allow_bash_command_substitution=0",
        "debug=0",
        f"command_timeout={max(1, round(settings.timeout))}",
        "connection_timeout=300",
    ]
    lines += [f"command[{name}]={line}" for name, line in commands.items()]
    return "\n".join(lines) + "\n"
