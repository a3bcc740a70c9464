"""boto3/botocore errors as AwsError with AWS's own message (every module of provision.aws)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from botocore.exceptions import BotoCoreError, ClientError

from conveyor.errors import AwsError


def message(e: ClientError) -> str:
    return str(e.response.get("Error", {}).get("Message") or e)


@contextmanager
def aws_errors(doing: str) -> Iterator[None]:
    """A ClientError or BotoCoreError inside becomes AwsError("DOING: AWS's message")."""
    try:
        yield
    except ClientError as e:
        raise AwsError(f"{doing}: {message(e)}") from None
    except BotoCoreError as e:  # no credentials, endpoint unreachable, ...
        raise AwsError(f"{doing}: {e}") from None
