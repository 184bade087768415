"""The S3 API's authentication (see `api.py`): every request's SigV4 signature, recomputed
with botocore's signer, and the chunk signatures of a signed aws-chunked body, with the
errors S3 answers for each problem.
"""

from __future__ import annotations

from aiohttp import web

from simulator.core import aws_chunked
from simulator.core.s3_api import S3Error
from simulator.serving import Credentials, SigV4Problem, chunk_signing, verify_sigv4

ERRORS = {
    "missing": S3Error("AccessDenied", 403, "Access Denied (requests must be signed: SigV4)"),
    "key": S3Error(
        "InvalidAccessKeyId",
        403,
        "The AWS Access Key Id you provided does not exist in our records.",
    ),
    "token": S3Error("InvalidToken", 400, "The provided token is malformed or otherwise invalid."),
    "expired": S3Error("AccessDenied", 403, "Request has expired"),
    "skewed": S3Error(
        "RequestTimeTooSkewed",
        403,
        "The difference between the request time and the current time is too large.",
    ),
    "region": S3Error(
        "AuthorizationHeaderMalformed",
        400,
        "The authorization header is malformed; the region in the credential scope is "
        "wrong for this endpoint.",
    ),
    "signature": S3Error(
        "SignatureDoesNotMatch",
        403,
        "The request signature we calculated does not match the signature you provided. "
        "Check your key and signing method.",
    ),
}
STREAMING = "STREAMING-"
UNSIGNED = "UNSIGNED-PAYLOAD"
_SIGNED_STREAMING = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"  # and its -TRAILER variant
_STREAMING_KINDS = {
    "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
    _SIGNED_STREAMING,
    _SIGNED_STREAMING + "-TRAILER",
}


def authenticate(request: web.BaseRequest, credentials: Credentials, region: str) -> None:
    try:
        verify_sigv4(
            request.method,
            request.raw_path,
            request.headers,
            credentials,
            s3=True,
            region=region,
        )
    except SigV4Problem as problem:
        raise ERRORS[problem.kind] from None


def decoder(
    request: web.BaseRequest, content_sha: str, credentials: Credentials
) -> aws_chunked.Decoder | None:
    """The aws-chunked decoder a body needs (none for a plain one); the signed variants
    check each chunk's signature, chained from the request's own."""
    encoding = request.headers.get("Content-Encoding", "")
    if not content_sha.startswith(STREAMING) and "aws-chunked" not in encoding:
        return None
    if content_sha.startswith(STREAMING) and content_sha not in _STREAMING_KINDS:
        raise S3Error(
            "NotImplemented", 501, f"s3sim does not verify {content_sha} uploads (SigV4a)."
        )
    if not content_sha.startswith(_SIGNED_STREAMING):
        return aws_chunked.Decoder()
    try:
        seed, timestamp, scope, sign = chunk_signing(request.headers, credentials)
    except SigV4Problem as problem:
        raise ERRORS[problem.kind] from None
    chain = aws_chunked.SignatureChain(seed, timestamp, scope, sign)
    return aws_chunked.Decoder(chain, signed_trailer=content_sha.endswith("-TRAILER"))
