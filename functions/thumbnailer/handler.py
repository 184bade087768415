"""Demo: pretend to make a thumbnail of each uploaded image ($LATEST: also uses boto3)."""

import os
from urllib.parse import unquote_plus

import boto3  # bundled with every Lambda Python runtime, as here

SIZE = int(os.environ.get("SIZE", "64"))
print(f"cold start: thumbnailer loading, size {SIZE}, boto3 {boto3.__version__}")  # once


def handler(event, context):
    record = event["Records"][0]
    key = unquote_plus(record["s3"]["object"]["key"])
    if "fail" in key:
        raise RuntimeError(f"cannot make a thumbnail of {key}")
    size = record["s3"]["object"].get("size", 0)
    print(f"thumbnail {SIZE}px of s3://{record['s3']['bucket']['name']}/{key} ({size} bytes)")
    return {
        "key": key,
        "size": SIZE,
        "bytes": size,
        "version": context.function_version,
        "boto3": boto3.__version__,
    }
