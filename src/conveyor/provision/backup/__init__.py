"""Backups of a stack's stateful services to S3 (docs/backups.md): the stream format
(stream.py), the bucket (s3.py), what is copied and how (copy.py, through the BackupRuntime
protocol that runtime.docker_backup implements) and EBS snapshots (ebs.py)."""
