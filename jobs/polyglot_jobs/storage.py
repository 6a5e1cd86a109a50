"""Object storage for jobs: `s3://bucket/key` through boto3, or a local folder (`file:///abs/path` or a
plain path) for development and the GPU bench. Objects are written whole; a folder upload writes its
marker object last, so a reader that finds the marker finds every file."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urlparse


def join(uri: str, *parts: str) -> str:
    out = uri.rstrip("/")
    for p in parts:
        out = f"{out}/{p.strip('/')}"
    return out


class Store:
    """The few operations jobs need. Keys are full URIs, so one store serves inputs and outputs."""

    def get_bytes(self, uri: str) -> bytes | None:
        raise NotImplementedError

    def put_bytes(self, uri: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        raise NotImplementedError

    def list(self, prefix_uri: str) -> Iterator[str]:
        """Every object URI under the prefix (recursive)."""
        raise NotImplementedError

    def get_text(self, uri: str) -> str | None:
        b = self.get_bytes(uri)
        return None if b is None else b.decode("utf-8")

    def get_json(self, uri: str) -> Any:
        t = self.get_text(uri)
        return None if t is None else json.loads(t)

    def put_json(self, uri: str, value: Any) -> None:
        self.put_bytes(uri, json.dumps(value, indent=2, sort_keys=True).encode("utf-8"), "application/json")

    def exists(self, uri: str) -> bool:
        return self.get_bytes(uri) is not None

    def upload_dir(self, local: Path, prefix_uri: str, marker: str | None = "_COMPLETE") -> None:
        for f in sorted(p for p in Path(local).rglob("*") if p.is_file()):
            self.put_bytes(join(prefix_uri, f.relative_to(local).as_posix()), f.read_bytes())
        if marker:
            self.put_bytes(join(prefix_uri, marker), b"")

    def download_dir(self, prefix_uri: str, local: Path) -> Path:
        """Copy a prefix into `local` (files appear only when whole: each is written then renamed)."""
        base = prefix_uri.rstrip("/") + "/"
        local.mkdir(parents=True, exist_ok=True)
        for uri in self.list(base):
            rel = uri[len(base) :]
            dest = local / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            data = self.get_bytes(uri)
            if data is None:
                continue
            tmp = dest.with_name(dest.name + ".part")
            tmp.write_bytes(data)
            os.replace(tmp, dest)
        return local


class LocalStore(Store):
    @staticmethod
    def path(uri: str) -> Path:
        return Path(urlparse(uri).path if uri.startswith("file://") else uri)

    def get_bytes(self, uri: str) -> bytes | None:
        p = self.path(uri)
        return p.read_bytes() if p.is_file() else None

    def put_bytes(self, uri: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        p = self.path(uri)
        p.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, p)

    def list(self, prefix_uri: str) -> Iterator[str]:
        root = self.path(prefix_uri)
        if not root.is_dir():
            return iter(())
        scheme = "file://" if prefix_uri.startswith("file://") else ""
        return iter(sorted(f"{scheme}{p}" for p in root.rglob("*") if p.is_file() and not p.name.startswith(".")))

    def download_dir(self, prefix_uri: str, local: Path) -> Path:
        src = self.path(prefix_uri)
        if src.resolve() == Path(local).resolve():
            return local
        shutil.copytree(src, local, dirs_exist_ok=True)
        return local


class S3Store(Store):
    """boto3 against AWS S3 or any S3-compatible server. The endpoint comes from `AWS_ENDPOINT_URL`
    (boto3's own variable) or `S3_ENDPOINT` (what Polyglot's local job runner passes); credentials
    come from the usual AWS variables, never from the job spec."""

    def __init__(self) -> None:
        import boto3
        from botocore.config import Config

        endpoint = os.environ.get("AWS_ENDPOINT_URL") or os.environ.get("S3_ENDPOINT") or None
        self.client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name=os.environ.get("AWS_REGION", "us-east-1"),
            config=Config(
                s3={"addressing_style": "path" if endpoint else "auto"},
                retries={"max_attempts": 8, "mode": "standard"},
            ),
        )

    @staticmethod
    def split(uri: str) -> tuple[str, str]:
        u = urlparse(uri)
        return u.netloc, u.path.lstrip("/")

    def get_bytes(self, uri: str) -> bytes | None:
        bucket, key = self.split(uri)
        try:
            return self.client.get_object(Bucket=bucket, Key=key)["Body"].read()
        except self.client.exceptions.NoSuchKey:
            return None
        except Exception as e:  # botocore raises ClientError 404 for some servers
            if getattr(e, "response", {}).get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise

    def put_bytes(self, uri: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        bucket, key = self.split(uri)
        self.client.put_object(Bucket=bucket, Key=key, Body=data, ContentType=content_type)

    def list(self, prefix_uri: str) -> Iterator[str]:
        bucket, prefix = self.split(prefix_uri)
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                yield f"s3://{bucket}/{obj['Key']}"


_s3: S3Store | None = None


def store_for(uri: str) -> Store:
    global _s3
    if uri.startswith("s3://"):
        if _s3 is None:
            _s3 = S3Store()
        return _s3
    return LocalStore()
