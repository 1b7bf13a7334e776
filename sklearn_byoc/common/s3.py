"""Fetching one object from S3 (user code archives), through any S3 endpoint."""
from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlparse

from sklearn_byoc.common.errors import UserError


def download_object(uri: str, destination: Path, *, what: str, hint_missing: str,
                    region: str | None = None) -> None:
    """Download one S3 object with boto3's default client.

    boto3 is imported here only: the built-in stages never need it.  The
    default client honours AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_S3, so any S3
    endpoint (an emulator in tests, a VPC endpoint) works without code here.
    """
    parsed = urlparse(uri)
    bucket, key = parsed.netloc, parsed.path.lstrip("/")
    if not bucket or not key or key.endswith("/"):
        raise UserError(f"{what} {uri!r} must name one S3 object, "
                        "s3://bucket/key/sourcedir.tar.gz")
    try:
        import boto3
        from botocore.exceptions import BotoCoreError, ClientError
    except ImportError as exc:
        raise UserError(f"fetching {uri} needs boto3, which this image lacks ({exc})") from exc
    # A training container gets AWS_REGION from the platform; boto3 itself reads
    # AWS_DEFAULT_REGION, so pass the former on when it is the only one set.
    region = region or os.environ.get("AWS_REGION") or None
    try:
        client = boto3.client("s3", region_name=region) if region else boto3.client("s3")
        client.download_file(bucket, key, str(destination))
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code = error.get("Code", "error")
        detail = error.get("Message") or str(exc)
        hint = ""
        if str(code) in ("404", "NoSuchKey", "NoSuchBucket"):
            hint = f"; {hint_missing}"
        elif str(code) in ("403", "AccessDenied"):
            hint = "; the job's execution role needs s3:GetObject on it"
        raise UserError(f"cannot download {uri}: {code} {detail}{hint}") from exc
    except (BotoCoreError, OSError) as exc:
        raise UserError(f"cannot download {uri}: {exc}") from exc
