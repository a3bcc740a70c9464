"""Observability (issue 10): logs (collect, store, search, ship), metrics (Prometheus and
Alertmanager supervised on loopback, their targets and rules), checks (Nagios).

    observe/logs/     the EFK role: collect from the Docker Engine, an embedded store, shipping
    observe/metrics/  the Grafana role: Prometheus, Alertmanager, node exporter, targets, alerts
    observe/checks/   the Nagios role: objects, the daemon, state read back

Talks to the Docker Engine through `runtime`, starts processes through `host`, keeps state
through `store`; the pure parts (parsing, rendering config, deciding) stay free of I/O.
"""
