"""The GitLab CI engine: load and expand `.gitlab-ci.yml`, schedule jobs, run them, and move
their files (artifacts, caches, reports) with GitLab's semantics."""
