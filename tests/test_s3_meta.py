"""The S3 API's pure rules on object attributes (core.s3_meta) and the chunk signatures of
signed aws-chunked bodies (core.aws_chunked), against AWS's documented examples."""

from __future__ import annotations

import pytest

from simulator.core import aws_chunked, s3_meta
from simulator.core.s3_api import S3Error
from simulator.core.s3_meta import ObjectMeta
from simulator.serving import Credentials, chunk_signing

# AWS's example of a signed chunked upload ("Signature Calculations for the Authorization
# Header: Transferring Payload in Multiple Chunks", Example: PUT Object): 66,560 bytes of
# "a" in chunks of 65,536 and 1,024 bytes, then the empty chunk.
EXAMPLE_AUTHORIZATION = (
    "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,"
    "SignedHeaders=content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;"
    "x-amz-decoded-content-length;x-amz-storage-class,"
    "Signature=4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"
)
EXAMPLE_CREDENTIALS = Credentials(
    "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
)
EXAMPLE_CHUNKS = (
    (65536, "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648"),
    (1024, "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497"),
    (0, "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9"),
)


def example_decoder() -> aws_chunked.Decoder:
    headers = {"Authorization": EXAMPLE_AUTHORIZATION, "x-amz-date": "20130524T000000Z"}
    seed, timestamp, scope, sign = chunk_signing(headers, EXAMPLE_CREDENTIALS)
    assert scope == "20130524/us-east-1/s3/aws4_request"
    return aws_chunked.Decoder(aws_chunked.SignatureChain(seed, timestamp, scope, sign))


def example_body(tamper_at: int | None = None) -> bytes:
    body = b""
    for size, signature in EXAMPLE_CHUNKS:
        data = bytearray(b"a" * size)
        if tamper_at is not None and size == 1024:
            data[tamper_at] = ord("b")
        body += f"{size:x};chunk-signature={signature}\r\n".encode() + bytes(data) + b"\r\n"
    return body


def feed_in_pieces(decoder: aws_chunked.Decoder, body: bytes, piece: int = 777) -> bytes:
    return b"".join(decoder.feed(body[i : i + piece]) for i in range(0, len(body), piece))


def test_the_aws_example_of_a_signed_chunked_upload_verifies() -> None:
    decoder = example_decoder()
    assert feed_in_pieces(decoder, example_body()) == b"a" * 66560
    assert decoder.done


def test_a_tampered_chunk_or_a_reordered_chain_fails_its_signature() -> None:
    with pytest.raises(aws_chunked.BadChunkSignature):
        feed_in_pieces(example_decoder(), example_body(tamper_at=10))
    (first, first_sig), (second, second_sig), _ = EXAMPLE_CHUNKS
    swapped = (
        f"{second:x};chunk-signature={second_sig}\r\n".encode() + b"a" * second + b"\r\n"
        + f"{first:x};chunk-signature={first_sig}\r\n".encode() + b"a" * first + b"\r\n"
    )  # fmt: skip
    with pytest.raises(aws_chunked.BadChunkSignature):
        feed_in_pieces(example_decoder(), swapped)
    unsigned = b"10000\r\n" + b"a" * 65536 + b"\r\n"
    with pytest.raises(aws_chunked.BadChunkSignature):
        example_decoder().feed(unsigned)


def test_conditions_follow_s3s_precedence() -> None:
    etag, mtime_ns = "abc", 1_700_000_000 * 10**9  # Tue, 14 Nov 2023 22:13:20 GMT
    before, after = "Tue, 14 Nov 2023 22:00:00 GMT", "Tue, 14 Nov 2023 23:00:00 GMT"
    assert s3_meta.evaluate({}, etag, mtime_ns) is None
    assert s3_meta.evaluate({"If-Match": '"abc"'}, etag, mtime_ns) is None
    with pytest.raises(S3Error) as failed:
        s3_meta.evaluate({"If-Match": '"other"'}, etag, mtime_ns)
    assert (failed.value.code, failed.value.status) == ("PreconditionFailed", 412)
    with pytest.raises(S3Error):
        s3_meta.evaluate({"If-Unmodified-Since": before}, etag, mtime_ns)
    # S3: If-Match true and If-Unmodified-Since false -> 200 OK
    both = {"If-Match": '"abc"', "If-Unmodified-Since": before}
    assert s3_meta.evaluate(both, etag, mtime_ns) is None
    assert s3_meta.evaluate({"If-None-Match": '"abc"'}, etag, mtime_ns) == 304
    assert s3_meta.evaluate({"If-Modified-Since": after}, etag, mtime_ns) == 304
    assert s3_meta.evaluate({"If-Modified-Since": before}, etag, mtime_ns) is None
    # S3: If-None-Match false and If-Modified-Since true -> 304 Not Modified
    none_match = {"If-None-Match": '"abc"', "If-Modified-Since": before}
    assert s3_meta.evaluate(none_match, etag, mtime_ns) == 304
    assert s3_meta.evaluate({"If-Modified-Since": "not a date"}, etag, mtime_ns) is None
    with pytest.raises(S3Error) as copy_failed:  # CopyObject's source conditions: 412
        s3_meta.evaluate({"x-amz-copy-source-if-none-match": "abc"}, etag, 0, "x-amz-copy-source-")
    assert copy_failed.value.status == 412


def test_tags_are_checked_with_s3s_limits_and_messages() -> None:
    assert s3_meta.parse_tagging_header("b=2&a=1&empty") == (("a", "1"), ("b", "2"), ("empty", ""))
    eleven = "&".join(f"k{i}=v" for i in range(11))
    cases = {
        eleven: ("BadRequest", "Object tags cannot be greater than 10"),
        "k" * 129 + "=v": ("InvalidTag", "The TagKey you have provided is too long, max 128"),
        "k=" + "v" * 257: ("InvalidTag", "The TagValue you have provided is too long, max 256"),
        "a=1&a=2": ("InvalidTag", "Cannot provide multiple Tags with the same key"),
        "aws:x=1": ("InvalidTag", "Your TagKey cannot be prefixed with aws:"),
        "k%5B%7B=v": ("InvalidTag", "The TagKey you have provided is invalid"),
        "TagSet=[{Key=string,Value=string}]": (
            "InvalidArgument",
            "The header 'x-amz-tagging' shall be encoded as UTF-8 then URLEncoded URL query "
            "parameters without tag name duplicates.",
        ),
    }
    for header, (code, message) in cases.items():
        with pytest.raises(S3Error) as refused:
            s3_meta.parse_tagging_header(header)
        assert (refused.value.code, refused.value.message) == (code, message), header
    ten = tuple((f"{i:03d}" + "k" * 125, "v" * 256) for i in range(10))  # the limits exactly
    assert s3_meta.validate_tags(ten) == ten


def test_the_tagging_document_reads_with_or_without_s3s_namespace() -> None:
    plain = b"<Tagging><TagSet><Tag><Key>k</Key><Value>v + w</Value></Tag></TagSet></Tagging>"
    assert s3_meta.parse_tagging_xml(plain) == (("k", "v + w"),)
    spaced = s3_meta.tagging_xml((("k", "v + w"),))
    assert s3_meta.parse_tagging_xml(spaced) == (("k", "v + w"),)
    for bad in (b"<Tagging><Tag/></Tagging>", b"not xml", b"<Other><TagSet/></Other>"):
        with pytest.raises(S3Error) as refused:
            s3_meta.parse_tagging_xml(bad)
        assert refused.value.code == "MalformedXML"


def test_stored_headers_drop_aws_chunked_and_user_metadata_is_limited() -> None:
    headers = {
        "Content-Type": "text/plain",
        "Content-Encoding": "aws-chunked,gzip",
        "x-amz-meta-Owner": "me",
        "Host": "x",
    }
    stored, user = s3_meta.from_request(headers)
    assert stored == (("Content-Encoding", "gzip"), ("Content-Type", "text/plain"))
    assert user == (("owner", "me"),)
    assert s3_meta.from_request({"Content-Encoding": "aws-chunked"})[0] == ()
    with pytest.raises(S3Error) as big:
        s3_meta.from_request({"x-amz-meta-big": "x" * 2048})
    assert big.value.code == "MetadataTooLarge"
    meta = ObjectMeta("e-2", stored, user, (("t", "1"),), (("x-amz-checksum-crc32", "AAAAAA=="),))
    assert ObjectMeta.from_json(meta.to_json()) == meta
    shown = s3_meta.response_headers(meta, checksums=False)
    assert shown["x-amz-meta-owner"] == "me" and shown["x-amz-tagging-count"] == "1"
    assert "x-amz-checksum-crc32" not in shown
    assert s3_meta.response_headers(ObjectMeta(), True) == {"Content-Type": "binary/octet-stream"}


def test_checksum_values_must_be_a_digest_of_their_algorithms_size() -> None:
    assert s3_meta.checksum_problem("x-amz-checksum-crc32", "AAAAAA==") is None
    problem = s3_meta.checksum_problem("x-amz-checksum-crc32", "AAAA")
    assert problem is not None and problem.message == (
        "Value for x-amz-checksum-crc32 header is invalid."
    )
    trailing = s3_meta.checksum_problem("x-amz-checksum-sha256", "!!", trailing=True)
    assert trailing is not None
    assert trailing.message == "Value for x-amz-checksum-sha256 trailing header is invalid."


def test_part_numbers_select_a_multipart_objects_parts() -> None:
    meta = ObjectMeta("e-2", parts=(5, 3))
    assert s3_meta.part_range(meta, "1", 8) == (0, 4)
    assert s3_meta.part_range(meta, "2", 8) == (5, 7)
    assert s3_meta.part_range(ObjectMeta(), "1", 8) is None
    for number in ("3", "0", "x"):
        with pytest.raises(S3Error):
            s3_meta.part_range(meta, number, 8)
