"""The process environment of an execution environment (reference §6.7). Pure."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field

# Dummy credentials: a handler must never reach a real AWS account by accident.
DUMMY_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "ASIAS3SIMLOCALDUMMY0",
    "AWS_SECRET_ACCESS_KEY": "s3sim/local/dummy/secret/not/a/real/key0",
    "AWS_SESSION_TOKEN": "s3sim-local-dummy-session-token",
}
XRAY_DAEMON = "127.0.0.1:2000"  # nothing listens: X-Ray SDKs send UDP segments into the void
_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def references(value: str) -> list[str]:
    """Names of the user's environment variables a value refers to as `${NAME}`."""
    return _REFERENCE.findall(value)


def expand(value: str, host: Mapping[str, str]) -> str:
    return _REFERENCE.sub(lambda m: host.get(m.group(1), ""), value)


@dataclass(frozen=True)
class RuntimeVars:
    """What the runtime process needs besides the function's identity."""

    api: str  # AWS_LAMBDA_RUNTIME_API, host:port
    execution_env: str  # AWS_Lambda_python3.11; "" for custom runtimes
    runtime_dir: str  # LAMBDA_RUNTIME_DIR: the runtime's own packages
    telemetry_fd: int | None = None  # _LAMBDA_TELEMETRY_LOG_FD
    log_format: str | None = None  # AWS_LAMBDA_LOG_FORMAT (Text | JSON)
    log_level: str | None = None  # AWS_LAMBDA_LOG_LEVEL (TRACE ... FATAL)
    bin_dirs: tuple[str, ...] = ()  # the layers' bin/ folders (Lambda's /opt/bin)
    lib_dirs: tuple[str, ...] = ()  # the layers' lib/ folders (Lambda's /opt/lib)
    endpoints: Mapping[str, str] = field(default_factory=dict)  # AWS_ENDPOINT_URL_S3, ...


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
    runtime: RuntimeVars,
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
        "AWS_LAMBDA_RUNTIME_API": runtime.api,
        "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
        "AWS_XRAY_DAEMON_ADDRESS": XRAY_DAEMON,
        "_AWS_XRAY_DAEMON_ADDRESS": XRAY_DAEMON.split(":")[0],
        "_AWS_XRAY_DAEMON_PORT": XRAY_DAEMON.split(":")[1],
        "_HANDLER": handler,
        "LAMBDA_TASK_ROOT": code_dir,
        "LAMBDA_RUNTIME_DIR": runtime.runtime_dir,
        "PYTHONPATH": runtime.runtime_dir,  # as in Lambda: a python the handler starts sees it
        "SHLVL": "0",
        "PWD": code_dir,
        "PATH": ":".join([host.get("PATH", "/usr/local/bin:/usr/bin:/bin"), *runtime.bin_dirs]),
        "LD_LIBRARY_PATH": ":".join([code_dir, f"{code_dir}/lib", *runtime.lib_dirs]),
        "LANG": "en_US.UTF-8",
        "LC_CTYPE": "C.UTF-8",
        "TZ": ":UTC",
        "HOME": tmp_dir,
        "TMPDIR": tmp_dir,
        # Keep SDKs away from the user's real profiles and from instance metadata.
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        "AWS_EC2_METADATA_DISABLED": "true",
        **DUMMY_CREDENTIALS,
    }
    env.update(runtime.endpoints)  # before the function's own: a function may point elsewhere
    if runtime.execution_env:
        env["AWS_EXECUTION_ENV"] = runtime.execution_env
    if runtime.telemetry_fd is not None:
        env["_LAMBDA_TELEMETRY_LOG_FD"] = str(runtime.telemetry_fd)
    if runtime.log_format:
        env["AWS_LAMBDA_LOG_FORMAT"] = runtime.log_format
    if runtime.log_level:
        env["AWS_LAMBDA_LOG_LEVEL"] = runtime.log_level
    env.update({key: expand(value, host) for key, value in user_env.items()})
    return env


def log_stream_name(version: str) -> str:
    """`YYYY/MM/DD/[<version>]<32 hex>` as Lambda names an environment's log stream."""
    day = dt.datetime.now(dt.UTC).strftime("%Y/%m/%d")
    return f"{day}/[{version}]{uuid.uuid4().hex}"


def trace_header(epoch_s: int, root: str, parent: str, lineage: str) -> str:
    """An X-Ray trace header as Lambda hands it over (Lambda-Runtime-Trace-Id, and
    _X_AMZN_TRACE_ID in the runtime): `root` is 24 hex digits, `parent` 16, `lineage` the
    chain of invocations it belongs to (core/lineage.py)."""
    return f"Root=1-{epoch_s:08x}-{root};Parent={parent};Sampled=0;Lineage={lineage}"
