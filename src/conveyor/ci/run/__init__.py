"""Running a pipeline: the runner and its collaborators, executors, workspaces, artifacts,
caches, blobs, masking and reports."""
