"""`conveyor provision`: the playbook and roles shipped as package data, run with ansible-runner
(docs/provision.md)."""
