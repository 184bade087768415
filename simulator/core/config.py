"""The configuration model: frozen values built by `config_parse.parse`, with path-aware errors.

Pure: no files. `config_source` reads config.yaml and hands the parsed mapping in here.
Validation follows AWS (S3's PutBucketNotificationConfiguration and Lambda's alias/version
rules); messages use AWS's text where the reference gives one.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from simulator.core.arn import ALIAS_NAME, ALIAS_NAME_PATTERN, LATEST, FunctionArn
from simulator.core.deployments import Preference
from simulator.errors import ArnError, ConfigError, Problem

DEFAULT_IGNORE = (
    "*.swp",
    "*.swo",
    "*.swx",
    "*~",
    ".#*",
    "#*#",
    "4913",
    "*.part",
    "*.tmp",
    "*.crdownload",
    ".*",  # dotfiles and dot-folders, .DS_Store included
)
RESERVED_ENV = frozenset(
    {
        "_HANDLER",
        "_X_AMZN_TRACE_ID",
        "AWS_REGION",
        "AWS_EXECUTION_ENV",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_LAMBDA_RUNTIME_API",
        "LAMBDA_TASK_ROOT",
        "LAMBDA_RUNTIME_DIR",
    }
)


@dataclass(frozen=True)
class Destination:
    kind: Literal["bucket", "function"]
    target: str  # bucket name, or function ARN text

    def __str__(self) -> str:
        return f"arn:aws:s3:::{self.target}" if self.kind == "bucket" else self.target


@dataclass(frozen=True)
class AsyncOverrides:
    """Per-qualifier asynchronous invocation settings (Lambda's EventInvokeConfig on an alias).

    Unset fields fall back to the function's (a simulator choice; see the README).
    """

    retries: int | None = None
    max_event_age_s: int | None = None
    on_failure: Destination | None = None
    on_success: Destination | None = None


@dataclass(frozen=True)
class Alias:
    name: str
    version: str  # "$LATEST" or "N"
    weights: Mapping[str, float] = field(default_factory=dict)  # at most one extra version
    overrides: AsyncOverrides = field(default_factory=AsyncOverrides)
    # How a publish moves this alias to a new version (SAM's DeploymentPreference).
    deployment: Preference | None = None


@dataclass(frozen=True)
class AsyncConfig:
    """What governs retries and destinations for one invoked qualifier."""

    retries: int
    max_event_age_s: int
    on_failure: Destination | None
    on_success: Destination | None


@dataclass(frozen=True)
class Function:
    name: str
    handler: str = "handler.handler"
    timeout_s: int = 3
    memory_mb: int = 128
    environment: Mapping[str, str] = field(default_factory=dict)
    description: str = ""
    reserved_concurrency: int | None = None
    retries: int = 2
    max_event_age_s: int = 21600
    on_failure: Destination | None = None
    on_success: Destination | None = None
    aliases: Mapping[str, Alias] = field(default_factory=dict)
    runtime: str | None = None  # python3.X or provided.al2023; None: the simulator's Python
    layers: tuple[str, ...] = ()  # workspace-relative folders, mapped as Lambda maps /opt
    log_format: str | None = None  # Lambda's LoggingConfig.LogFormat: Text | JSON
    log_level: str | None = None  # LoggingConfig.ApplicationLogLevel (JSON format only)
    # PutFunctionRecursionConfig: Terminate stops a chain that keeps invoking the function
    # (core/lineage.py); Allow lets it run. Per function, not per version, as in Lambda.
    recursive_loop: str = "Terminate"

    def async_config(self, qualifier: str | None) -> AsyncConfig:
        alias = self.aliases.get(qualifier or "")
        o = alias.overrides if alias is not None else AsyncOverrides()
        return AsyncConfig(
            retries=self.retries if o.retries is None else o.retries,
            max_event_age_s=self.max_event_age_s
            if o.max_event_age_s is None
            else o.max_event_age_s,
            on_failure=o.on_failure or self.on_failure,
            on_success=o.on_success or self.on_success,
        )

    def version_settings(self) -> dict[str, Any]:
        """What a published version snapshots (the rest stays per function, as in AWS)."""
        return {
            "handler": self.handler,
            "timeout": self.timeout_s,
            "memory": self.memory_mb,
            "environment": dict(self.environment),
            "description": self.description,
            # Only when set, so versions published before these existed keep their digests.
            **({"runtime": self.runtime} if self.runtime else {}),
            **({"layers": list(self.layers)} if self.layers else {}),
            **({"log_format": self.log_format} if self.log_format else {}),
            **({"log_level": self.log_level} if self.log_level else {}),
        }


@dataclass(frozen=True)
class Notification:
    id: str
    function_arn: FunctionArn
    events: tuple[str, ...]
    prefix: str = ""
    suffix: str = ""


@dataclass(frozen=True)
class Bucket:
    name: str
    notifications: tuple[Notification, ...] = ()


@dataclass(frozen=True)
class Settings:
    time_scale: float = 1.0  # compresses retry delays and event ages (0.01: 1 min -> 0.6 s)
    concurrency: int = 2  # environments per function when reserved_concurrency is not set
    catch_up: Literal["fire", "record"] = "fire"
    ignore: tuple[str, ...] = DEFAULT_IGNORE
    settle_ms: int = 100  # quiet time before a file without a close event counts as written
    watcher: Literal["native", "polling"] = "native"  # polling: network/virtual file systems
    polling_interval_ms: int = 500
    throttle: Literal["wait", "backoff"] = "wait"  # backoff: Lambda's 1 s doubling to 5 min
    keep_alive_s: int = 600  # idle environments are stopped after this long
    force_cold_start: bool = False  # a fresh environment for every invocation
    spare_runtimes: int = 2  # blank runtimes kept started, so cold starts skip start-up
    duplicate_fraction: float = 0.0  # chaos: deliver this share of events twice
    reorder_window_ms: int = 0  # chaos: hold events back up to this long, so they reorder
    seed: int | None = None  # seeds weighted-alias choices and generated ids
    log_limit_bytes: int = 256 * 1024  # handler output kept per invocation
    log_rotate_bytes: int = 10 * 1024 * 1024  # the JSON log file is rotated at this size
    log_keep: int = 5  # rotated JSON log files kept (events.1.jsonl is the newest)
    principal_id: str = "AWS:AIDAS3SIMLOCALUSER"
    owner_id: str = "A3S3SIMLOCALOWNER"
    source_ip: str = "127.0.0.1"
    event_version: str = "2.1"
    s3_api_port: int = 0  # the S3 API's port on 127.0.0.1 (0: one the system picks)
    lambda_api_port: int = 0  # the Lambda API's port on 127.0.0.1 (0: one the system picks)


@dataclass(frozen=True)
class Config:
    region: str = "us-east-1"
    account: str = "123456789012"
    functions: Mapping[str, Function] = field(default_factory=dict)
    buckets: Mapping[str, Bucket] = field(default_factory=dict)
    settings: Settings = field(default_factory=Settings)

    def function_arn(self, function: str, qualifier: str | None = None) -> FunctionArn:
        return FunctionArn.build(self.region, self.account, function, qualifier)

    def referenced_versions(self) -> dict[str, set[int]]:
        """Published versions that aliases point at, per function (checked against the store)."""
        wanted: dict[str, set[int]] = {}
        for fn in self.functions.values():
            for alias in fn.aliases.values():
                for v in (alias.version, *alias.weights):
                    if v != LATEST:
                        wanted.setdefault(fn.name, set()).add(int(v))
        return wanted


def check_published(
    config: Config, published: Mapping[str, frozenset[int]], last: Mapping[str, int] | None = None
) -> None:
    """Aliases and version ARNs must name versions that exist (`Function not found: <arn>:<v>`)."""
    problems = published_problems(config, published, last)
    if problems:
        raise ConfigError(problems)


def published_problems(
    config: Config, published: Mapping[str, frozenset[int]], last: Mapping[str, int] | None = None
) -> list[Problem]:
    """`last` is the highest number ever published per function: a missing version at or below
    it was published and its folder lost, which publishing cannot repair (numbers are never
    reused), so the hint says how to restore it instead."""
    problems = []
    last = last or {}
    for fn_name, versions in sorted(config.referenced_versions().items()):
        for v in sorted(versions - set(published.get(fn_name, frozenset()))):
            alias = _alias_naming(config.functions[fn_name], str(v))
            hint = (
                _lost_hint(
                    fn_name,
                    v,
                    "point the alias at another version: "
                    f"s3sim alias set {fn_name} {alias} <version>",
                )
                if v <= last.get(fn_name, 0)
                else f"publish it first: s3sim publish {fn_name}"
            )
            problems.append(
                Problem(
                    f"functions.{fn_name}.aliases.{alias}",
                    f"Function not found: {config.function_arn(fn_name, str(v))} ({hint})",
                )
            )
    for bucket in config.buckets.values():
        for i, n in enumerate(bucket.notifications):
            arn = n.function_arn
            number = int(arn.qualifier or 0) if arn.kind == "version" else 0
            if (
                arn.kind == "version"
                and arn.function in config.functions
                and number not in published.get(arn.function, frozenset())
            ):
                lost = number <= last.get(arn.function, 0)
                problems.append(
                    Problem(
                        f"buckets.{bucket.name}.notifications[{i}].function",
                        f"Unable to validate the following destination configurations: "
                        f"Not authorized to invoke function [{arn}] ("
                        + (
                            _lost_hint(arn.function, number, "point it at another version")
                            if lost
                            else f"version {arn.qualifier} is not published"
                        )
                        + ")",
                    )
                )
    return problems


def _lost_hint(function: str, version: int, instead: str) -> str:
    folder = f"versions/{function}/{version}"
    return (
        f"the files of published version {version} are missing from {folder}/: restore "
        f"that folder (e.g. git checkout -- {folder}), or {instead}"
    )


def only_alias(config: Config, function: str, alias: str) -> Config:
    """The config reduced to one alias, to check just what an edit of it references."""
    fn = config.functions[function]
    return replace(
        config, functions={function: replace(fn, aliases={alias: fn.aliases[alias]})}, buckets={}
    )


def _alias_naming(fn: Function, version: str) -> str:
    for alias in fn.aliases.values():
        if alias.version == version or version in alias.weights:
            return alias.name
    return "?"


def generated_id(bucket: str, arn: str, events: tuple[str, ...], prefix: str, suffix: str) -> str:
    """S3 generates an Id when none is given; real ones look like base64 of a UUID string.

    Ours is derived from the configuration itself so it stays the same across reloads.
    """
    name = "|".join((bucket, arn, ",".join(events), prefix, suffix))
    text = str(uuid.uuid5(uuid.NAMESPACE_URL, name))
    return base64.b64encode(text.encode()).decode()


def is_valid_alias_name(name: str) -> bool:
    return bool(ALIAS_NAME.match(name)) and len(name) <= 128


def alias_name_error(name: str) -> str:
    return (
        f"1 validation error detected: Value '{name}' at 'name' failed to satisfy "
        f"constraint: Member must satisfy regular expression pattern: {ALIAS_NAME_PATTERN}"
    )


__all__ = [
    "DEFAULT_IGNORE",
    "RESERVED_ENV",
    "Alias",
    "ArnError",
    "Bucket",
    "Config",
    "Destination",
    "Function",
    "Notification",
    "Settings",
    "check_published",
    "generated_id",
    "only_alias",
    "published_problems",
]
