"""The source side of the GitOps server: git sources (fetch, refs, checkouts, signatures,
pins pushed back), and webhook deliveries read into one shape. The controllers that act on
them live in `server/` and `app/`."""
