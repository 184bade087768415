"""The process environment of an execution environment (reference §6.7). Pure."""

from __future__ import annotations

import datetime as dt
import re
import sys
import uuid
from collections.abc import Mapping

# Dummy credentials: a handler must never reach a real AWS account by accident.
DUMMY_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "ASIAS3SIMLOCALDUMMY0",
    "AWS_SECRET_ACCESS_KEY": "s3sim/local/dummy/secret/not/a/real/key0",
    "AWS_SESSION_TOKEN": "s3sim-local-dummy-session-token",
}
_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def references(value: str) -> list[str]:
    """Names of the user's environment variables a value refers to as `${NAME}`."""
    return _REFERENCE.findall(value)


def expand(value: str, host: Mapping[str, str]) -> str:
    return _REFERENCE.sub(lambda m: host.get(m.group(1), ""), value)


def build(
    *,
    function: str,
    version: str,
    region: str,
    handler: str,
    memory_mb: int,
    code_dir: str,
    tmp_dir: str,
    log_stream: str,
    user_env: Mapping[str, str],
    host: Mapping[str, str],
) -> dict[str, str]:
    """Lambda's variables, then the function's own (with `${NAME}` taken from the host).

    Nothing else is inherited from the simulator's environment except PATH, so AWS_PROFILE,
    real credentials and the simulator's own settings stay out of the handler.
    """
    env = {
        "AWS_LAMBDA_FUNCTION_NAME": function,
        "AWS_LAMBDA_FUNCTION_VERSION": version,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory_mb),
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{function}",
        "AWS_LAMBDA_LOG_STREAM_NAME": log_stream,
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
        "AWS_EXECUTION_ENV": f"AWS_Lambda_python{sys.version_info[0]}.{sys.version_info[1]}",
        "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
        "_HANDLER": handler,
        "LAMBDA_TASK_ROOT": code_dir,
        "LAMBDA_RUNTIME_DIR": code_dir,
        "PWD": code_dir,
        "PATH": host.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        "LANG": "en_US.UTF-8",
        "TZ": ":UTC",
        "HOME": tmp_dir,
        "TMPDIR": tmp_dir,
        # Keep SDKs away from the user's real profiles and from instance metadata.
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        "AWS_EC2_METADATA_DISABLED": "true",
        **DUMMY_CREDENTIALS,
    }
    env.update({key: expand(value, host) for key, value in user_env.items()})
    return env


def log_stream_name(version: str) -> str:
    """`YYYY/MM/DD/[<version>]<32 hex>` as Lambda names an environment's log stream."""
    day = dt.datetime.now(dt.UTC).strftime("%Y/%m/%d")
    return f"{day}/[{version}]{uuid.uuid4().hex}"
