"""Demo: pretend to make a thumbnail of each uploaded image (version 1)."""

import os
from urllib.parse import unquote_plus

SIZE = int(os.environ.get("SIZE", "64"))
print(f"cold start: thumbnailer loading, size {SIZE}")  # runs once per environment


def handler(event, context):
    record = event["Records"][0]
    key = unquote_plus(record["s3"]["object"]["key"])
    if "fail" in key:
        raise RuntimeError(f"cannot make a thumbnail of {key}")
    print(f"thumbnail {SIZE}px of s3://{record['s3']['bucket']['name']}/{key}")
    return {"key": key, "size": SIZE, "version": context.function_version}
