"""The GitLab CI engine, in three layers: `load` (`.gitlab-ci.yml` to a pipeline model),
`select` (which jobs run, with which variables, in which order: pure) and `run` (the runner,
executors, workspaces, artifacts and caches)."""
