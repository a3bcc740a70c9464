"""GitOps: git as the source of truth — sources, per-environment reconcile, promotion,
rollback into git, and telling people what happened (`gitops.notify`)."""
