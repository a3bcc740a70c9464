"""GitOps: git as the source of truth. Sources (fetch, refs, checkouts, signatures, pins
pushed back), webhook deliveries read into one shape, what the server does next for an
environment (`gitops.sync`), and telling people what happened (`gitops.notify`). The
controller that carries it out is `app.controller`."""
