"""The S3 API's digests (see `api.py`): ETags (an object's MD5, cached by the file's identity),
the x-amz-checksum-* values a request carries or S3 computes by default (botocore's own
implementations), and the checks of a body against Content-MD5, x-amz-content-sha256 and
those checksums (S3's BadDigest).
"""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path
from typing import Any

from aiohttp import web

from simulator.core.s3_api import S3Error
from simulator.s3.api_auth import STREAMING, UNSIGNED

CHUNK = 1 << 20
DEFAULT_CHECKSUM = "x-amz-checksum-crc64nvme"  # what S3 computes when a write names none
_NOT_CHECKSUMS = ("x-amz-checksum-type", "x-amz-checksum-mode", "x-amz-checksum-algorithm")


class ETags:
    """Used on the server's event loop only."""

    def __init__(self) -> None:
        self._etags: dict[tuple[int, int, int, int, int], str] = {}  # identity -> MD5

    def of_path(self, path: str | Path, st: os.stat_result) -> str:
        with open(path, "rb") as f:
            return self.of_file(f, st)

    def of_file(self, f: Any, st: os.stat_result) -> str:
        """The MD5 of an open file, cached by what identifies its content (inode, size,
        mtime and ctime: a same-size replace keeping the mtime still changes the ctime)."""
        seen = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        etag = self._etags.get(seen)
        if etag is None:
            digest = hashlib.md5(usedforsecurity=False)
            f.seek(0)
            while chunk := f.read(CHUNK):
                digest.update(chunk)
            etag = self._etags[seen] = digest.hexdigest()
        return etag


def verify_body(request: web.BaseRequest, key: str, body: bytes) -> None:
    """A small body read whole (a document), against the digests its headers give."""
    md5, sha = hashlib.md5(body, usedforsecurity=False), hashlib.sha256(body)
    found = checksums(request.headers)
    for checksum in found.values():
        checksum.update(body)
    content_sha = request.headers.get("x-amz-content-sha256", UNSIGNED)
    expected = checksum_headers(request.headers)
    verify(request, key, md5, sha, content_sha, found, expected)


def verify(
    request: web.BaseRequest,
    key: str,
    md5: Any,
    sha: Any,
    content_sha: str,
    checksums: dict[str, Any],
    expected: dict[str, str],
) -> None:
    content_md5 = request.headers.get("Content-MD5")
    if content_md5 is not None and content_md5 != base64.b64encode(md5.digest()).decode():
        raise S3Error(
            "BadDigest",
            400,
            "The Content-MD5 you specified did not match what we received.",
            key,
        )
    if not content_sha.startswith((STREAMING, UNSIGNED)) and content_sha != sha.hexdigest():
        raise S3Error(
            "XAmzContentSHA256Mismatch",
            400,
            "The provided 'x-amz-content-sha256' header does not match what was computed.",
            key,
        )
    for name, checksum in checksums.items():
        if name in expected and expected[name] != base64.b64encode(checksum.digest()).decode():
            algorithm = name.removeprefix("x-amz-checksum-").upper()
            raise S3Error(
                "BadDigest",
                400,
                f"The {algorithm} you specified did not match the calculated checksum.",
                key,
            )


def headers(md5_hex: str, checksums: dict[str, Any]) -> dict[str, str]:
    """A write's answer: its ETag and checksums."""
    found = {"ETag": f'"{md5_hex}"', **dict(encoded(checksums))}
    if checksums:
        found["x-amz-checksum-type"] = "FULL_OBJECT"
    return found


def encoded(checksums: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    """Checksums as S3 stores and answers them: (header name, base64 digest)."""
    return tuple(
        (name, base64.b64encode(checksum.digest()).decode())
        for name, checksum in sorted(checksums.items())
    )


def checksum_headers(headers: Any) -> dict[str, str]:
    """The x-amz-checksum-<algorithm> values a request carries (not -type, -mode)."""
    return {
        k.lower(): v
        for k, v in headers.items()
        if k.lower().startswith("x-amz-checksum-") and k.lower() not in _NOT_CHECKSUMS
    }


def checksums(headers: Any) -> dict[str, Any]:
    """Checksum objects for the checksums a request carries in headers (or announces as a
    trailer), computed with botocore's own implementations."""
    names = set(checksum_headers(headers))
    trailer = headers.get("x-amz-trailer", "").strip().lower()
    if trailer.startswith("x-amz-checksum-"):
        names.add(trailer)
    return {name: checksum(name) for name in names}


def supported(name: str) -> bool:
    """Whether botocore computes this checksum here (CRC32C and CRC64NVME need awscrt)."""
    from botocore import httpchecksum  # type: ignore[import-untyped]

    return name.removeprefix("x-amz-checksum-") in httpchecksum._CHECKSUM_CLS


def checksum(name: str) -> Any:
    from botocore import httpchecksum

    algorithm = name.removeprefix("x-amz-checksum-")
    cls = httpchecksum._CHECKSUM_CLS.get(algorithm)  # CRC32C, CRC64NVME: with awscrt
    if cls is None:
        raise S3Error(
            "InvalidRequest", 400, f"Checksum algorithm {algorithm.upper()} is not supported here."
        )
    return cls()
