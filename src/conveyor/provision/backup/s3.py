"""The backup bucket through boto3: any S3-compatible store (AWS, MinIO, Ceph, moto).

    bucket = BackupBucket.connect(destination)        # endpoint_url / AWS_ENDPOINT_URL
    bucket.upload(key, chunks)                        # multipart, streamed from an iterator
    bucket.download(key)                              # an iterator of byte strings
    bucket.put_manifest(prefix, manifest); bucket.backups(prefix)
    bucket.delete_backup(stored)

Every boto3/botocore error comes out as BackupError with S3's message.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import IO, TYPE_CHECKING, Any, cast

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import ValidationError

from conveyor.errors import BackupError
from conveyor.model.backup import BackupDestination, BackupManifest, StoredBackup
from conveyor.provision.backup.stream import IterableReader

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

MANIFEST = "manifest.json"
# Multipart from 16 MiB, in 16 MiB parts: a large volume never sits in memory whole.
_TRANSFER = TransferConfig(multipart_threshold=16 << 20, multipart_chunksize=16 << 20)
_READ = 1 << 20


class BackupBucket:
    def __init__(self, client: S3Client, bucket: str) -> None:
        self.client = client
        self.bucket = bucket

    @classmethod
    def connect(cls, destination: BackupDestination) -> BackupBucket:
        if destination.bucket is None:
            raise BackupError(
                "no backup destination: set backups.destination.bucket in conveyor.yaml"
            )
        with _s3_errors("connect"):
            session = boto3.session.Session(region_name=destination.region or "us-east-1")
            client = session.client(
                "s3",
                endpoint_url=destination.endpoint_url,
                config=Config(retries={"max_attempts": 5, "mode": "standard"}),
            )
        return cls(client, destination.bucket)

    def create(self) -> None:
        """Make the bucket (tests; a real one comes from `conveyor aws apply` or by hand)."""
        with _s3_errors(f"creating bucket {self.bucket}"):
            self.client.create_bucket(Bucket=self.bucket)

    def upload(self, key: str, chunks: Iterable[bytes]) -> None:
        with _s3_errors(f"uploading {key}"):
            # A file over the chunks, buffered: s3transfer takes each read(part size) as a
            # whole part, and a short raw read would make a part below S3's 5 MiB minimum.
            buffered = io.BufferedReader(IterableReader(chunks), buffer_size=1 << 20)
            reader = cast("IO[Any]", buffered)
            self.client.upload_fileobj(reader, self.bucket, key, Config=_TRANSFER)

    def download(self, key: str) -> Iterator[bytes]:
        with _s3_errors(f"downloading {key}"):
            body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
        try:
            while True:
                with _s3_errors(f"downloading {key}"):
                    data = body.read(_READ)
                if not data:
                    return
                yield data
        finally:
            body.close()

    def put_manifest(self, prefix: str, manifest: BackupManifest) -> None:
        body = json.dumps(manifest.model_dump(mode="json"), indent=2, sort_keys=True)
        with _s3_errors(f"writing {prefix}{MANIFEST}"):
            self.client.put_object(
                Bucket=self.bucket,
                Key=f"{prefix}{MANIFEST}",
                Body=body.encode(),
                ContentType="application/json",
            )

    def backups(self, prefix: str) -> list[StoredBackup]:
        """Every backup under `prefix` that has a readable manifest, oldest first. A backup
        whose manifest is missing (an upload cut short) is not listed: it is not restorable."""
        out: list[StoredBackup] = []
        for key in self._keys(prefix):
            if not key.endswith(f"/{MANIFEST}"):
                continue
            with _s3_errors(f"reading {key}"):
                body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
            try:
                manifest = BackupManifest.model_validate_json(body)
            except ValidationError:
                continue
            out.append(StoredBackup(prefix=key[: -len(MANIFEST)], manifest=manifest))
        return sorted(out, key=lambda b: (b.created, b.id))

    def delete_backup(self, backup: StoredBackup) -> None:
        """Every object of the backup, the manifest last (so a cut delete stays listed)."""
        keys = [k for k in self._keys(backup.prefix) if not k.endswith(MANIFEST)]
        keys.append(f"{backup.prefix}{MANIFEST}")
        with _s3_errors(f"deleting {backup.prefix}"):
            for key in keys:
                self.client.delete_object(Bucket=self.bucket, Key=key)

    def _keys(self, prefix: str) -> Iterator[str]:
        with _s3_errors(f"listing {prefix}"):
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=prefix
            )
            for page in pages:
                for item in page.get("Contents", []):
                    yield item["Key"]


def _message(e: ClientError) -> str:
    error: Any = e.response.get("Error", {})
    return str(error.get("Message") or error.get("Code") or e)


@contextmanager
def _s3_errors(doing: str) -> Iterator[None]:
    try:
        yield
    except ClientError as e:
        raise BackupError(f"S3: {doing}: {_message(e)}") from None
    except BotoCoreError as e:  # no credentials, endpoint unreachable, ...
        raise BackupError(f"S3: {doing}: {e}") from None
