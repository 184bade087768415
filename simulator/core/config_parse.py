"""`parse`: the one way to build a Config: raw YAML values -> frozen model + problems."""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Mapping
from typing import Any, Literal

from simulator.core import config_settings, deployments
from simulator.core.arn import LATEST, FunctionArn
from simulator.core.config import (
    RESERVED_ENV,
    Alias,
    AsyncOverrides,
    Bucket,
    Config,
    Destination,
    Function,
    Notification,
    alias_name_error,
    generated_id,
    is_valid_alias_name,
)
from simulator.core.config_names import bucket_name_problems, handler_problem
from simulator.core.config_overlaps import overlapping_pairs
from simulator.core.config_reader import Reader, shown
from simulator.core.s3_events import EVENT_TYPES
from simulator.errors import ArnError, ConfigError, Problem

OVERLAPS_SHOWN = 10  # overlap errors listed per bucket (S3 itself names just one)
_ENV_KEY = re.compile(r"^[a-zA-Z][a-zA-Z0-9_]+$")
_FUNCTION_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


def parse(raw: Any) -> Config:
    config, problems = build(raw)
    if problems:
        raise ConfigError(problems)
    return config


def build(raw: Any) -> tuple[Config, list[Problem]]:
    """The config as far as it can be read (defaults where a value is wrong), and every
    problem found: later checks (published versions, environment references) still run on it,
    so one pass lists everything wrong."""
    r = Reader()
    top = r.mapping(raw, "")
    r.known(top, _TOP_KEYS, "")
    region = r.typed(top.get("region"), str, "region", "us-east-1")
    account = _account(r, top.get("account"))
    settings = config_settings.parse(r, r.mapping(top.get("simulator"), "simulator"))
    functions = {
        str(name): _function(r, str(name), body, f"functions.{name}")
        for name, body in r.named(top.get("functions"), "functions").items()
    }
    config = Config(region, account, functions, {}, settings)
    buckets = {
        str(name): _bucket(r, config, str(name), body, f"buckets.{name}")
        for name, body in r.named(top.get("buckets"), "buckets").items()
    }
    config = Config(region, account, functions, buckets, settings)
    _check_destinations(r, config)
    _check_hooks(r, config)
    return config, r.problems


_TOP_KEYS = ("region", "account", "functions", "buckets", "simulator")


def _account(r: Reader, raw: Any) -> str:
    if raw is None:
        return "123456789012"
    if isinstance(raw, bool) or not isinstance(raw, (str, int)):
        r.fail("account", f"must be a 12-digit AWS account id, got {shown(raw)}")
        return "123456789012"
    account = str(raw)  # YAML reads an unquoted account id as a number
    if not (len(account) == 12 and account.isascii() and account.isdigit()):
        r.fail("account", f"must be a 12-digit AWS account id, got {account!r}")
    return account


_FUNCTION_KEYS = {
    "handler",
    "timeout",
    "memory",
    "environment",
    "description",
    "reserved_concurrency",
    "retries",
    "max_event_age",
    "on_failure",
    "on_success",
    "aliases",
    "runtime",
    "layers",
    "log_format",
    "log_level",
    "recursive_loop",
    "deployment_preference",
}
_RUNTIME = re.compile(r"^(python3\.\d{1,2}|provided|provided\.al2|provided\.al2023)$")
_LOG_FORMATS = ("Text", "JSON")
_RECURSIVE_LOOP = ("Terminate", "Allow")
_LOG_LEVELS = ("TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL")
_ALIAS_KEYS = {
    "version",
    "weights",
    "description",
    "retries",
    "max_event_age",
    "on_failure",
    "on_success",
    "deployment",
}


def _function(r: Reader, name: str, raw: Any, path: str) -> Function:
    body = r.mapping(raw, path)
    if not _FUNCTION_NAME.match(name):
        r.fail(path, f"function name must match [a-zA-Z0-9-_]{{1,64}}, got {name!r}")
    r.known(body, _FUNCTION_KEYS, path)
    handler = r.typed(body.get("handler"), str, f"{path}.handler", "handler.handler")
    if not handler or any(c.isspace() for c in handler) or len(handler) > 128:
        r.fail(
            f"{path}.handler", f"handler must match [^\\s]+ (at most 128 chars), got {handler!r}"
        )
    elif problem := handler_problem(handler):
        r.fail(f"{path}.handler", problem)
    reserved = body.get("reserved_concurrency")
    return Function(
        name=name,
        handler=handler,
        timeout_s=r.ranged(body.get("timeout"), f"{path}.timeout", "timeout", 1, 900, 3),
        memory_mb=r.ranged(body.get("memory"), f"{path}.memory", "memorySize", 128, 10240, 128),
        environment=_environment(r, body.get("environment"), f"{path}.environment"),
        description=r.typed(body.get("description"), str, f"{path}.description", ""),
        reserved_concurrency=None
        if reserved is None
        else r.ranged(
            reserved, f"{path}.reserved_concurrency", "reservedConcurrentExecutions", 0, 1000, 0
        ),
        retries=r.ranged(body.get("retries"), f"{path}.retries", "maximumRetryAttempts", 0, 2, 2),
        max_event_age_s=r.ranged(
            body.get("max_event_age"),
            f"{path}.max_event_age",
            "maximumEventAgeInSeconds",
            60,
            21600,
            21600,
        ),
        on_failure=_destination(r, body.get("on_failure"), f"{path}.on_failure"),
        on_success=_destination(r, body.get("on_success"), f"{path}.on_success"),
        aliases=_with_preference(
            r,
            {
                str(alias): _alias(r, str(alias), value, f"{path}.aliases.{alias}")
                for alias, value in r.named(body.get("aliases"), f"{path}.aliases").items()
            },
            body.get("deployment_preference"),
            f"{path}.deployment_preference",
        ),
        runtime=_runtime(r, body.get("runtime"), f"{path}.runtime"),
        layers=_layers(r, body.get("layers"), f"{path}.layers"),
        **_logging(r, body, path),
        recursive_loop=_recursive_loop(r, body.get("recursive_loop"), f"{path}.recursive_loop"),
    )


def _recursive_loop(r: Reader, raw: Any, path: str) -> str:
    value = r.typed(raw, str, path, "Terminate")
    if value not in _RECURSIVE_LOOP:
        r.fail(path, f"must be one of {', '.join(_RECURSIVE_LOOP)}, got {value!r}")
        return "Terminate"
    return value


def _runtime(r: Reader, raw: Any, path: str) -> str | None:
    runtime = r.typed(raw, str, path, "") or None
    if runtime is not None and not _RUNTIME.match(runtime):
        r.fail(path, f"runtime must be python3.X, provided.al2023 or provided.al2, got {runtime!r}")
    return runtime


def _layers(r: Reader, raw: Any, path: str) -> tuple[str, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        r.fail(path, f"must be a list of folders, got {shown(raw)}")
        return ()
    layers = []
    for i, item in enumerate(raw):
        where = f"{path}[{i}]"
        if not isinstance(item, str) or not item.strip():
            r.fail(where, f"must be a folder of the workspace, got {shown(item)}")
        elif item.startswith("/") or ".." in item.split("/") or "\0" in item:
            r.fail(where, f"must be a relative folder inside the workspace, got {item!r}")
        else:
            layers.append(item.rstrip("/"))
    if len(layers) > 5:
        r.fail(path, f"a function can use at most 5 layers, got {len(layers)}")
    return tuple(layers)


def _logging(r: Reader, body: Mapping[Any, Any], path: str) -> dict[str, str | None]:
    """Lambda's LoggingConfig: LogFormat Text | JSON; an application log level needs JSON."""
    fmt = r.typed(body.get("log_format"), str, f"{path}.log_format", "") or None
    level = r.typed(body.get("log_level"), str, f"{path}.log_level", "") or None
    if fmt is not None and fmt not in _LOG_FORMATS:
        r.fail(f"{path}.log_format", f"must be one of {', '.join(_LOG_FORMATS)}, got {fmt!r}")
    if level is not None and level not in _LOG_LEVELS:
        r.fail(f"{path}.log_level", f"must be one of {', '.join(_LOG_LEVELS)}, got {level!r}")
    elif level is not None and fmt != "JSON":
        r.fail(
            f"{path}.log_level",
            "an application log level can only be set with log_format: JSON (as in Lambda)",
        )
    return {"log_format": fmt, "log_level": level}


def _environment(r: Reader, raw: Any, path: str) -> dict[str, str]:
    env: dict[str, str] = {}
    for key, value in r.named(raw, path).items():
        if not _ENV_KEY.match(key):
            r.fail(
                f"{path}.{key}",
                "environment variable names start with a letter and use "
                "[a-zA-Z0-9_], at least 2 characters",
            )
        elif key in RESERVED_ENV or key.startswith("AWS_LAMBDA_"):
            r.fail(
                f"{path}.{key}",
                "Lambda was unable to configure your environment variables "
                "because the environment variables you have provided contains reserved keys "
                f"that are currently not supported for modification. Reserved keys used in "
                f"this request: {key}",
            )
        if not isinstance(value, (str, int, float, bool)):  # bytes (!!binary), maps, lists
            r.fail(f"{path}.{key}", f"must be a string, got {shown(value)}")
            continue
        text = str(value).lower() if isinstance(value, bool) else str(value)
        if "\0" in text:
            r.fail(
                f"{path}.{key}", "contains a NUL character, which no environment variable can hold"
            )
            continue
        env[key] = text
    if sum(len(k) + len(v) for k, v in env.items()) > 4096:
        r.fail(
            path,
            "Lambda was unable to configure your environment variables because the "
            "environment variables you have provided exceeded the 4KB limit.",
        )
    return env


def _destination(r: Reader, raw: Any, path: str) -> Destination | None:
    if raw is None:
        return None
    if isinstance(raw, str):
        if raw.startswith("arn:aws:s3:::"):
            return Destination("bucket", raw.removeprefix("arn:aws:s3:::"))
        return Destination("function", raw)
    if isinstance(raw, Mapping) and len(raw) == 1 and ("bucket" in raw or "function" in raw):
        kind: Literal["bucket", "function"] = "bucket" if "bucket" in raw else "function"
        if not isinstance(raw[kind], str):
            r.fail(f"{path}.{kind}", f"must be a string, got {shown(raw[kind])}")
            return None
        return Destination(kind, raw[kind])
    r.fail(path, "must be {bucket: NAME}, {function: ARN}, or a destination ARN")
    return None


def _alias(r: Reader, name: str, raw: Any, path: str) -> Alias:
    if not is_valid_alias_name(name):
        r.fail(path, alias_name_error(name))
    if isinstance(raw, Mapping):
        r.known(raw, _ALIAS_KEYS, path)
        version = _version(r, raw.get("version"), f"{path}.version")
        weights = _weights(r, raw.get("weights"), version, f"{path}.weights")
        deployment = _deployment(r, raw.get("deployment"), f"{path}.deployment")
        return Alias(name, version, weights, _overrides(r, raw, path), deployment)
    return Alias(name, _version(r, raw, path))


def _with_preference(r: Reader, aliases: dict[str, Alias], raw: Any, path: str) -> dict[str, Alias]:
    """SAM's shape, per function: `deployment_preference: {alias: prod, type: ...}` (the
    alias is SAM's AutoPublishAlias); the same as `deployment:` under that alias."""
    if raw is None:
        return aliases
    body = r.mapping(raw, path)
    alias = body.get("alias")
    if alias not in aliases:
        r.fail(f"{path}.alias", f"must name an alias of the function, got {shown(alias)}")
        return aliases
    if aliases[alias].deployment is not None:
        r.fail(path, f"alias {alias!r} declares its own deployment; keep one of the two")
        return aliases
    pref = _deployment(r, {k: v for k, v in body.items() if k != "alias"}, path)
    return {**aliases, alias: dataclasses.replace(aliases[alias], deployment=pref)}


def _deployment(r: Reader, raw: Any, path: str) -> deployments.Preference | None:
    if raw is None:
        return None
    preference, problems = deployments.parse_preference(raw, path)
    r.problems += problems
    return preference


def _overrides(r: Reader, raw: Mapping[str, Any], path: str) -> AsyncOverrides:
    """An alias's own EventInvokeConfig: retries, event age and destinations."""
    retries, age = raw.get("retries"), raw.get("max_event_age")
    return AsyncOverrides(
        retries=None
        if retries is None
        else r.ranged(retries, f"{path}.retries", "maximumRetryAttempts", 0, 2, 2),
        max_event_age_s=None
        if age is None
        else r.ranged(age, f"{path}.max_event_age", "maximumEventAgeInSeconds", 60, 21600, 21600),
        on_failure=_destination(r, raw.get("on_failure"), f"{path}.on_failure"),
        on_success=_destination(r, raw.get("on_success"), f"{path}.on_success"),
    )


def _version(r: Reader, raw: Any, path: str) -> str:
    text = str(raw) if isinstance(raw, (int, str)) and not isinstance(raw, bool) else ""
    if text == LATEST or (text.isascii() and text.isdigit() and int(text) >= 1):
        return str(int(text)) if text.isdigit() else text
    r.fail(
        path,
        f"1 validation error detected: Value '{raw}' at 'functionVersion' failed to "
        f"satisfy constraint: Member must satisfy regular expression pattern: "
        f"(\\$LATEST|[0-9]+)",
    )
    return LATEST


def _weights(r: Reader, raw: Any, primary: str, path: str) -> dict[str, float]:
    weights: dict[str, float] = {}
    for key, value in r.mapping(raw, path).items():
        problem = weight_problem(str(key), value)
        if problem:
            r.fail(path, problem)
        else:
            weights[str(int(str(key)))] = float(value)  # weight_problem: a finite number
    if len(weights) > 1:
        r.fail(path, "Number of items in AdditionalVersionWeights cannot be greater than 1")
    if weights and primary == LATEST:
        r.fail(path, "$LATEST is not supported for an alias pointing to more than 1 version")
    if primary in weights:
        r.fail(
            path,
            f"Invalid function version {primary}. Function version {primary} is "
            f"already included in routing configuration.",
        )
    return weights


def weight_problem(key: str, value: Any) -> str | None:
    """AWS's ValidationException texts for one AdditionalVersionWeights entry."""
    number = _number(value)
    text = "null" if number is None else repr(number)
    head = (
        f"1 validation error detected: Value '{{{key}={text}}}' at "
        f"'routingConfig.additionalVersionWeights' failed to satisfy constraint: "
    )
    if not (key.isascii() and key.isdigit()):
        return head + (
            "Map keys must satisfy constraint: [Member must have length less than "
            "or equal to 1024, Member must have length greater than or equal to 1, "
            "Member must satisfy regular expression pattern: [0-9]+]"
        )
    if number is None or not 0.0 <= number <= 1.0:
        return head + (
            "Map value must satisfy constraint: [Member must have value less than or "
            "equal to 1.0, Member must have value greater than or equal to 0.0, "
            "Member must not be null]"
        )
    return None


def _number(value: Any) -> float | None:
    """A YAML number as a float; None for anything else (a bool, or an int too big)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        return float(value)
    except OverflowError:
        return None


_SECTIONS = ("notifications", "LambdaFunctionConfigurations")
# S3's other destinations are accepted (a pasted configuration may hold them) and ignored.
_BUCKET_KEYS = (
    *_SECTIONS,
    "QueueConfigurations",
    "TopicConfigurations",
    "EventBridgeConfiguration",
)
_SHORT_KEYS = ("id", "events", "prefix", "suffix", "function")
_S3_KEYS = ("Id", "LambdaFunctionArn", "Events", "Filter")


def _bucket(r: Reader, config: Config, name: str, raw: Any, path: str) -> Bucket:
    body = r.mapping(raw, path)
    for problem in bucket_name_problems(name):
        r.fail(path, problem)
    if "NotificationConfiguration" in body:
        r.known(body, ("NotificationConfiguration",), path)
        path = f"{path}.NotificationConfiguration"
        body = r.mapping(body["NotificationConfiguration"], path)
    r.known(body, _BUCKET_KEYS, path, listed=_SECTIONS)
    entries: list[tuple[str, Any]] = []
    for section in _SECTIONS:
        items = r.typed(body.get(section), list, f"{path}.{section}", [])
        entries += [(f"{path}.{section}[{i}]", item) for i, item in enumerate(items)]
    notifications = tuple(
        n for p, item in entries if (n := _notification(r, config, name, item, p)) is not None
    )
    _check_overlaps(r, notifications, path.removesuffix(".NotificationConfiguration"))
    return Bucket(name, notifications)


def _notification(
    r: Reader, config: Config, bucket: str, raw: Any, path: str
) -> Notification | None:
    body = r.mapping(raw, path)
    s3_shape = "LambdaFunctionArn" in body or "Events" in body
    id_key, events_key, arn_key = (
        ("Id", "Events", "LambdaFunctionArn") if s3_shape else ("id", "events", "function")
    )
    r.known(body, _S3_KEYS if s3_shape else _SHORT_KEYS, path)
    prefix, suffix = (_s3_filter if s3_shape else _short_filter)(r, body, path)
    events = _events(r, body.get(events_key), f"{path}.{events_key}")
    arn = _target(r, config, body.get(arn_key), f"{path}.{arn_key}")
    config_id = _id(r, body.get(id_key), f"{path}.{id_key}")
    if arn is None or not events:
        return None
    if not config_id:
        config_id = generated_id(bucket, str(arn), events, prefix, suffix)
    return Notification(config_id, arn, events, prefix, suffix)


def _id(r: Reader, raw: Any, path: str) -> str:
    """The configuration id; "" when none is given (S3 then generates one)."""
    if raw is None or (isinstance(raw, int) and not isinstance(raw, bool)):
        return "" if raw is None else str(raw)  # `id: 7` is read by YAML as a number
    return r.typed(raw, str, path, "")


def _short_filter(r: Reader, body: Mapping[str, Any], path: str) -> tuple[str, str]:
    return (
        r.typed(body.get("prefix"), str, f"{path}.prefix", ""),
        r.typed(body.get("suffix"), str, f"{path}.suffix", ""),
    )


def _s3_filter(r: Reader, body: Mapping[str, Any], path: str) -> tuple[str, str]:
    """`Filter.Key.FilterRules`: at most one prefix and one suffix rule."""
    path = f"{path}.Filter"
    filter_ = r.mapping(body.get("Filter"), path)
    r.known(filter_, ("Key",), path)
    key = r.mapping(filter_.get("Key"), f"{path}.Key")
    r.known(key, ("FilterRules",), f"{path}.Key")
    rules_path = f"{path}.Key.FilterRules"
    found: dict[str, str] = {}
    for i, rule in enumerate(r.typed(key.get("FilterRules"), list, rules_path, [])):
        rule_map = r.mapping(rule, f"{rules_path}[{i}]")
        r.known(rule_map, ("Name", "Value"), f"{rules_path}[{i}]")
        name = r.typed(rule_map.get("Name"), str, f"{rules_path}[{i}].Name", "").lower()
        value = r.typed(rule_map.get("Value"), str, f"{rules_path}[{i}].Value", "")
        if rule_map.get("Name") is not None and not isinstance(rule_map.get("Name"), str):
            continue  # the wrong type is reported already
        if name not in ("prefix", "suffix"):  # case-insensitive, as S3 accepts it
            r.fail(f"{rules_path}[{i}].Name", "filter rule name must be prefix or suffix")
        elif name in found:
            r.fail(rules_path, f"Cannot specify more than one {name} rule in a filter.")
        else:
            found[name] = value
    return found.get("prefix", ""), found.get("suffix", "")


def _events(r: Reader, raw: Any, path: str) -> tuple[str, ...]:
    if not isinstance(raw, list) or not raw:
        r.fail(path, 'must be a non-empty list of event types, e.g. ["s3:ObjectCreated:*"]')
        return ()
    events = []
    for i, event in enumerate(raw):
        if not isinstance(event, str):
            r.fail(f"{path}[{i}]", f"must be a string, got {shown(event)}")
        elif event not in EVENT_TYPES:
            r.fail(path, f"The event is not supported for notifications: {event!r}")
        else:
            events.append(event)
    return tuple(events)


def _target(r: Reader, config: Config, text: Any, path: str) -> FunctionArn | None:
    if text is not None and not isinstance(text, str):
        r.fail(path, f"must be a string, got {shown(text)}")
        return None
    arn = _parse_arn(text) if text is not None else None
    if arn is None:
        r.fail(path, f"The ARN could not be parsed: {text!r}")
        return None
    fn = config.functions.get(arn.function)
    unauthorized = (
        f"Unable to validate the following destination configurations: "
        f"Not authorized to invoke function [{arn}]"
    )
    if arn.region != config.region or arn.account != config.account:
        r.fail(
            path,
            f"{unauthorized} (the function must be in region {config.region}, "
            f"account {config.account})",
        )
    elif fn is None:
        r.fail(path, f"{unauthorized} (no function {arn.function!r} under functions)")
    elif arn.kind == "alias" and arn.qualifier not in fn.aliases:
        r.fail(path, f"{unauthorized} (function {arn.function!r} has no alias {arn.qualifier!r})")
    return arn


@functools.lru_cache(maxsize=4096)  # thousands of rules usually name a few functions
def _parse_arn(text: str) -> FunctionArn | None:
    try:
        return FunctionArn.parse(text)
    except ArnError:
        return None


def _check_overlaps(r: Reader, notes: tuple[Notification, ...], bucket_path: str) -> None:
    pairs = overlapping_pairs(notes, limit=OVERLAPS_SHOWN + 1)
    if len(pairs) > OVERLAPS_SHOWN:
        pairs = pairs[:OVERLAPS_SHOWN]
        r.fail(
            bucket_path,
            f"more than {OVERLAPS_SHOWN} pairs of configurations overlap; the first are listed",
        )
    for i, j in pairs:
        a, b = notes[i], notes[j]
        where = f"{bucket_path}: configurations {a.id!r} and {b.id!r}"
        if not (a.prefix or a.suffix or b.prefix or b.suffix):
            r.fail(
                where,
                "Configurations overlap. Configurations on the same bucket cannot "
                "share a common event type.",
            )
        else:
            r.fail(
                where,
                "Configuration is ambiguously defined. Cannot have overlapping "
                "suffixes in two rules if the prefixes are overlapping for the same "
                "event type.",
            )


def _check_hooks(r: Reader, config: Config) -> None:
    """A deployment's hooks are functions of the workspace (by name or ARN)."""
    for fn in config.functions.values():
        for alias in fn.aliases.values():
            pref = alias.deployment
            if pref is None:
                continue
            for key, hook in (
                ("pre_traffic", pref.pre_traffic),
                ("post_traffic", pref.post_traffic),
            ):
                name = hook_function(hook) if hook is not None else None
                if name is not None and name not in config.functions:
                    r.fail(
                        f"functions.{fn.name}.aliases.{alias.name}.deployment.{key}",
                        f"Function not found: {config.function_arn(name)}",
                    )


def hook_function(hook: str) -> str:
    """The function a hook names: itself, or the function of an ARN."""
    try:
        return FunctionArn.parse(hook).function if hook.startswith("arn:") else hook
    except ArnError:
        return hook


def _check_destinations(r: Reader, config: Config) -> None:
    for fn in config.functions.values():
        places = [(f"functions.{fn.name}", fn.on_failure, fn.on_success)]
        places += [
            (
                f"functions.{fn.name}.aliases.{a.name}",
                a.overrides.on_failure,
                a.overrides.on_success,
            )
            for a in fn.aliases.values()
        ]
        for base, on_failure, on_success in places:
            _check_destination(r, config, fn, on_failure, f"{base}.on_failure")
            if on_success is not None and on_success.kind == "bucket":
                r.fail(
                    f"{base}.on_success",
                    "Amazon S3 buckets are supported as on-failure destinations only",
                )
            _check_destination(r, config, fn, on_success, f"{base}.on_success")


def _check_destination(
    r: Reader, config: Config, fn: Function, dest: Destination | None, path: str
) -> None:
    if dest is not None:
        if dest.kind == "bucket":
            for problem in bucket_name_problems(dest.target):
                r.fail(path, problem)
        elif dest.kind == "function":
            try:
                target = FunctionArn.parse(dest.target)
            except ArnError:
                r.fail(path, f"The ARN could not be parsed: {dest.target!r}")
                return
            if target.function == fn.name:
                r.fail(path, "You can't specify the function as a destination for itself.")
            elif target.function not in config.functions:
                r.fail(path, f"Function not found: {target}")
