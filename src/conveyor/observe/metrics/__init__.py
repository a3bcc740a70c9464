"""The Grafana role: Prometheus, Alertmanager and node exporter supervised on loopback, their
scrape targets (file-based discovery), recording and alerting rules, dashboards."""
