"""`s3sim init`: a small commented workspace for a user who starts from scratch (one
function, one bucket with a rule, aliases). The repository root stays the larger demo."""

from __future__ import annotations

from pathlib import Path

from simulator.errors import UsageError

CONFIG = """\
# An s3sim workspace. While `s3sim run` is running, every saved edit here applies live.
region: us-east-1
account: "123456789012"

simulator:
  # 1.0 is AWS timing (retries after ~1 and ~2 minutes); 0.05 makes them ~3 s and ~6 s.
  time_scale: 0.05

functions:
  hello:                       # its $LATEST code is functions/hello/
    handler: handler.handler   # module.function, resolved as the Lambda runtime does
    timeout: 3                 # seconds, 1-900
    memory: 128                # MB, 128-10240
    retries: 2                 # MaximumRetryAttempts, 0-2
    aliases:
      live: $LATEST            # after `s3sim publish hello`: s3sim alias set hello live 1
      dev: $LATEST

buckets:
  inbox:                       # the folder buckets/inbox/ is the bucket
    notifications:
      - id: new-text-files
        events: ["s3:ObjectCreated:*"]   # also: s3:ObjectRemoved:*
        prefix: incoming/
        suffix: .txt
        function: arn:aws:lambda:us-east-1:123456789012:function:hello:live
"""

HANDLER = '''\
"""$LATEST of `hello`: runs for each .txt file dropped under buckets/inbox/incoming/."""

from urllib.parse import unquote_plus


def handler(event, context):
    record = event["Records"][0]
    bucket = record["s3"]["bucket"]["name"]
    key = unquote_plus(record["s3"]["object"]["key"])  # S3 sends keys URL-encoded
    print(f"hello from version {context.function_version}: s3://{bucket}/{key}")
    return {"key": key}
'''

GITIGNORE = """\
# the simulator's runtime state (journal, object index, logs)
.s3sim/
__pycache__/
"""


def create(root: Path) -> list[Path]:
    """Write the workspace into `root` (created if needed); refuses to overwrite one."""
    if (root / "config.yaml").exists():
        raise UsageError(f"{root / 'config.yaml'} exists already: s3sim init writes new workspaces")
    files = {
        root / "config.yaml": CONFIG,
        root / "functions" / "hello" / "handler.py": HANDLER,
        root / ".gitignore": GITIGNORE,
    }
    written = []
    for path, text in files.items():
        if path.exists():  # a user's own file (a .gitignore) is kept
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        written.append(path)
    (root / "buckets" / "inbox" / "incoming").mkdir(parents=True, exist_ok=True)
    return written
