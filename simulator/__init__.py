"""s3sim: a local simulator of S3 event notifications -> AWS Lambda (versions and aliases)."""

__version__ = "0.1.0"
