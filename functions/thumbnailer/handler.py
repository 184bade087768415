"""Demo: make a "thumbnail" of each uploaded image ($LATEST: real S3 calls through boto3).

The object is read through the simulator's S3 API (AWS_ENDPOINT_URL_S3 and the credentials
come from the environment, as in Lambda), and the thumbnail is written into the `thumbnails`
bucket, whose own notification then runs the auditor.
"""

import os
from urllib.parse import unquote_plus

import boto3  # bundled with every Lambda Python runtime, as here

SIZE = int(os.environ.get("SIZE", "64"))
s3 = boto3.client("s3")  # created once per environment, reused by warm invocations
print(f"cold start: thumbnailer loading, size {SIZE}, boto3 {boto3.__version__}")


def handler(event, context):
    record = event["Records"][0]
    bucket = record["s3"]["bucket"]["name"]
    key = unquote_plus(record["s3"]["object"]["key"])
    if "fail" in key:
        raise RuntimeError(f"cannot make a thumbnail of {key}")
    image = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    thumbnail = f"thumbnail {SIZE}px of s3://{bucket}/{key} ({len(image)} bytes)\n"
    s3.put_object(Bucket="thumbnails", Key=f"{key}.txt", Body=thumbnail.encode())
    print(f"wrote s3://thumbnails/{key}.txt")
    return {
        "key": key,
        "size": SIZE,
        "bytes": len(image),
        "version": context.function_version,
        "boto3": boto3.__version__,
    }
