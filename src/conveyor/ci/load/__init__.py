"""Loading `.gitlab-ci.yml`: located YAML, includes, `extends`, `!reference`, GitLab's schema
and semantic checks, into a `PipelineSpec`."""
