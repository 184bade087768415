"""Parsing rules behind `Config.from_mapping`: raw YAML values -> frozen model + problems."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from simulator import config_settings
from simulator.arn import LATEST, FunctionArn
from simulator.config import (
    _BUCKET_NAME, _ENV_KEY, _FUNCTION_NAME, RESERVED_ENV, Alias, AsyncOverrides, Bucket, Config,
    Destination, Function, Notification, alias_name_error, generated_id, is_valid_alias_name,
)
from simulator.config_overlaps import overlapping_pairs
from simulator.errors import ArnError, ConfigError, Problem
from simulator.routing import EVENT_TYPES

T = TypeVar("T")


class Reader:
    """Collects problems while reading; each read names its dotted path."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def fail(self, path: str, message: str) -> None:
        self.problems.append(Problem(path, message))

    def mapping(self, value: Any, path: str) -> Mapping[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            self.fail(path, f"must be a mapping, got {type(value).__name__}")
            return {}
        return value

    def typed(self, value: Any, kind: type[T], path: str, default: T) -> T:
        if value is None:
            return default
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            return value  # type: ignore[return-value]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            self.fail(path, f"must be {kind.__name__}, got {value!r}")
            return default
        return value

    def ranged(self, value: Any, path: str, aws_name: str, lo: int, hi: int, default: int) -> int:
        number = self.typed(value, int, path, default)
        if number < lo:
            self.fail(path, _range(number, aws_name, "greater", lo))
        elif number > hi:
            self.fail(path, _range(number, aws_name, "less", hi))
        return number


def _range(value: int, aws_name: str, side: str, bound: int) -> str:
    return (f"1 validation error detected: Value '{value}' at '{aws_name}' failed to satisfy "
            f"constraint: Member must have value {side} than or equal to {bound}")


def parse(raw: Any) -> Config:
    r = Reader()
    top = r.mapping(raw, "")
    for key in set(top) - {"region", "account", "functions", "buckets", "simulator"}:
        r.fail(str(key), "unknown setting (expected region, account, functions, buckets, simulator)")
    region = r.typed(top.get("region"), str, "region", "us-east-1")
    account = str(r.typed(top.get("account"), (str, int), "account", "123456789012"))  # type: ignore[arg-type]
    if not (len(account) == 12 and account.isdigit()):
        r.fail("account", f"must be a 12-digit AWS account id, got {account!r}")
    settings = config_settings.parse(r, r.mapping(top.get("simulator"), "simulator"))
    functions = {
        str(name): _function(r, str(name), body, f"functions.{name}")
        for name, body in r.mapping(top.get("functions"), "functions").items()
    }
    config = Config(region, account, functions, {}, settings)
    buckets = {
        str(name): _bucket(r, config, str(name), body, f"buckets.{name}")
        for name, body in r.mapping(top.get("buckets"), "buckets").items()
    }
    config = Config(region, account, functions, buckets, settings)
    _check_destinations(r, config)
    if r.problems:
        raise ConfigError(r.problems)
    return config


_FUNCTION_KEYS = {"handler", "timeout", "memory", "environment", "description",
                  "reserved_concurrency", "retries", "max_event_age", "on_failure", "on_success",
                  "aliases"}
_ALIAS_KEYS = {"version", "weights", "description", "retries", "max_event_age", "on_failure",
               "on_success"}


def _function(r: Reader, name: str, raw: Any, path: str) -> Function:
    body = r.mapping(raw, path)
    if not _FUNCTION_NAME.match(name):
        r.fail(path, f"function name must match [a-zA-Z0-9-_]{{1,64}}, got {name!r}")
    for key in set(body) - _FUNCTION_KEYS:
        r.fail(f"{path}.{key}", f"unknown setting (expected one of {', '.join(sorted(_FUNCTION_KEYS))})")
    handler = r.typed(body.get("handler"), str, f"{path}.handler", "handler.handler")
    if not handler or any(c.isspace() for c in handler) or len(handler) > 128:
        r.fail(f"{path}.handler", f"handler must match [^\\s]+ (at most 128 chars), got {handler!r}")
    reserved = body.get("reserved_concurrency")
    return Function(
        name=name,
        handler=handler,
        timeout_s=r.ranged(body.get("timeout"), f"{path}.timeout", "timeout", 1, 900, 3),
        memory_mb=r.ranged(body.get("memory"), f"{path}.memory", "memorySize", 128, 10240, 128),
        environment=_environment(r, body.get("environment"), f"{path}.environment"),
        description=r.typed(body.get("description"), str, f"{path}.description", ""),
        reserved_concurrency=None if reserved is None else r.ranged(
            reserved, f"{path}.reserved_concurrency", "reservedConcurrentExecutions", 0, 1000, 0),
        retries=r.ranged(body.get("retries"), f"{path}.retries", "maximumRetryAttempts", 0, 2, 2),
        max_event_age_s=r.ranged(body.get("max_event_age"), f"{path}.max_event_age",
                                 "maximumEventAgeInSeconds", 60, 21600, 21600),
        on_failure=_destination(r, body.get("on_failure"), f"{path}.on_failure"),
        on_success=_destination(r, body.get("on_success"), f"{path}.on_success"),
        aliases={
            str(alias): _alias(r, str(alias), value, f"{path}.aliases.{alias}")
            for alias, value in r.mapping(body.get("aliases"), f"{path}.aliases").items()
        },
    )


def _environment(r: Reader, raw: Any, path: str) -> dict[str, str]:
    env: dict[str, str] = {}
    for key, value in r.mapping(raw, path).items():
        key = str(key)
        if not _ENV_KEY.match(key):
            r.fail(f"{path}.{key}", "environment variable names start with a letter and use "
                                   "[a-zA-Z0-9_], at least 2 characters")
        elif key in RESERVED_ENV or key.startswith("AWS_LAMBDA_"):
            r.fail(f"{path}.{key}", "Lambda was unable to configure your environment variables "
                   "because the environment variables you have provided contains reserved keys "
                   f"that are currently not supported for modification. Reserved keys used in "
                   f"this request: {key}")
        if isinstance(value, (dict, list)) or value is None:
            r.fail(f"{path}.{key}", f"must be a string, got {value!r}")
            continue
        env[key] = str(value).lower() if isinstance(value, bool) else str(value)
    if sum(len(k) + len(v) for k, v in env.items()) > 4096:
        r.fail(path, "Lambda was unable to configure your environment variables because the "
                     "environment variables you have provided exceeded the 4KB limit.")
    return env


def _destination(r: Reader, raw: Any, path: str) -> Destination | None:
    if raw is None:
        return None
    if isinstance(raw, str):
        if raw.startswith("arn:aws:s3:::"):
            return Destination("bucket", raw.removeprefix("arn:aws:s3:::"))
        return Destination("function", raw)
    body = r.mapping(raw, path)
    if set(body) == {"bucket"}:
        return Destination("bucket", str(body["bucket"]))
    if set(body) == {"function"}:
        return Destination("function", str(body["function"]))
    r.fail(path, "must be {bucket: NAME}, {function: ARN}, or a destination ARN")
    return None


def _alias(r: Reader, name: str, raw: Any, path: str) -> Alias:
    if not is_valid_alias_name(name):
        r.fail(path, alias_name_error(name))
    if isinstance(raw, Mapping):
        for key in set(raw) - _ALIAS_KEYS:
            r.fail(f"{path}.{key}", f"unknown setting (expected one of {', '.join(sorted(_ALIAS_KEYS))})")
        version = _version(r, raw.get("version"), f"{path}.version")
        weights = _weights(r, raw.get("weights"), version, f"{path}.weights")
        return Alias(name, version, weights, _overrides(r, raw, path))
    return Alias(name, _version(r, raw, path))


def _overrides(r: Reader, raw: Mapping[str, Any], path: str) -> AsyncOverrides:
    """An alias's own EventInvokeConfig: retries, event age and destinations."""
    retries, age = raw.get("retries"), raw.get("max_event_age")
    return AsyncOverrides(
        retries=None if retries is None else r.ranged(
            retries, f"{path}.retries", "maximumRetryAttempts", 0, 2, 2),
        max_event_age_s=None if age is None else r.ranged(
            age, f"{path}.max_event_age", "maximumEventAgeInSeconds", 60, 21600, 21600),
        on_failure=_destination(r, raw.get("on_failure"), f"{path}.on_failure"),
        on_success=_destination(r, raw.get("on_success"), f"{path}.on_success"),
    )


def _version(r: Reader, raw: Any, path: str) -> str:
    text = str(raw) if isinstance(raw, (int, str)) and not isinstance(raw, bool) else ""
    if text == LATEST or (text.isdigit() and int(text) >= 1):
        return str(int(text)) if text.isdigit() else text
    r.fail(path, f"1 validation error detected: Value '{raw}' at 'functionVersion' failed to "
                 f"satisfy constraint: Member must satisfy regular expression pattern: "
                 f"(\\$LATEST|[0-9]+)")
    return LATEST


def _weights(r: Reader, raw: Any, primary: str, path: str) -> dict[str, float]:
    weights: dict[str, float] = {}
    for key, value in r.mapping(raw, path).items():
        problem = _weight_problem(str(key), value)
        if problem:
            r.fail(path, problem)
        else:
            weights[str(int(str(key)))] = float(value)
    if len(weights) > 1:
        r.fail(path, "Number of items in AdditionalVersionWeights cannot be greater than 1")
    if weights and primary == LATEST:
        r.fail(path, "$LATEST is not supported for an alias pointing to more than 1 version")
    if primary in weights:
        r.fail(path, f"Invalid function version {primary}. Function version {primary} is "
                     f"already included in routing configuration.")
    return weights


def _weight_problem(key: str, value: Any) -> str | None:
    """AWS's ValidationException texts for one AdditionalVersionWeights entry."""
    number = value if isinstance(value, (int, float)) and not isinstance(value, bool) else None
    shown = "null" if number is None else repr(float(number))
    head = (f"1 validation error detected: Value '{{{key}={shown}}}' at "
            f"'routingConfig.additionalVersionWeights' failed to satisfy constraint: ")
    if not key.isdigit():
        return head + ("Map keys must satisfy constraint: [Member must have length less than "
                       "or equal to 1024, Member must have length greater than or equal to 1, "
                       "Member must satisfy regular expression pattern: [0-9]+]")
    if number is None or not 0.0 <= number <= 1.0:
        return head + ("Map value must satisfy constraint: [Member must have value less than or "
                       "equal to 1.0, Member must have value greater than or equal to 0.0, "
                       "Member must not be null]")
    return None


def _bucket(r: Reader, config: Config, name: str, raw: Any, path: str) -> Bucket:
    body = r.mapping(raw, path)
    if not _BUCKET_NAME.match(name) or ".." in name:
        r.fail(path, f"invalid bucket name {name!r}: 3-63 characters of a-z, 0-9, '.', '-'")
    if "NotificationConfiguration" in body:
        body = r.mapping(body["NotificationConfiguration"], f"{path}.NotificationConfiguration")
    for key in set(body) - {"notifications", "LambdaFunctionConfigurations",
                            "QueueConfigurations", "TopicConfigurations",
                            "EventBridgeConfiguration"}:
        r.fail(f"{path}.{key}", "unknown setting (expected notifications or "
                                "LambdaFunctionConfigurations)")
    entries: list[tuple[str, Any]] = []
    for section in ("notifications", "LambdaFunctionConfigurations"):
        items = body.get(section) or []
        if not isinstance(items, list):
            r.fail(f"{path}.{section}", "must be a list")
            continue
        entries += [(f"{path}.{section}[{i}]", item) for i, item in enumerate(items)]
    notifications = tuple(
        n for p, item in entries if (n := _notification(r, config, name, item, p)) is not None
    )
    _check_overlaps(r, notifications, path)
    return Bucket(name, notifications)


def _notification(r: Reader, config: Config, bucket: str, raw: Any, path: str
                  ) -> Notification | None:
    body = r.mapping(raw, path)
    s3_shape = "LambdaFunctionArn" in body or "Events" in body
    arn_text = body.get("LambdaFunctionArn" if s3_shape else "function")
    events_raw = body.get("Events" if s3_shape else "events")
    prefix, suffix = _filters(r, body, s3_shape, path)
    events = _events(r, events_raw, f"{path}.{'Events' if s3_shape else 'events'}")
    arn_path = f"{path}.{'LambdaFunctionArn' if s3_shape else 'function'}"
    arn = _target(r, config, arn_text, arn_path)
    if arn is None or not events:
        return None
    id_value = body.get("Id" if s3_shape else "id")
    config_id = str(id_value) if id_value else generated_id(bucket, str(arn), events, prefix,
                                                              suffix)
    return Notification(config_id, arn, events, prefix, suffix)


def _filters(r: Reader, body: Mapping[str, Any], s3_shape: bool, path: str) -> tuple[str, str]:
    if not s3_shape:
        prefix = r.typed(body.get("prefix"), str, f"{path}.prefix", "")
        suffix = r.typed(body.get("suffix"), str, f"{path}.suffix", "")
        return prefix, suffix
    key = r.mapping(r.mapping(body.get("Filter"), f"{path}.Filter").get("Key"),
                    f"{path}.Filter.Key")
    rules_path = f"{path}.Filter.Key.FilterRules"
    rules = key.get("FilterRules") or []
    found: dict[str, str] = {}
    for i, rule in enumerate(rules if isinstance(rules, list) else []):
        rule_map = r.mapping(rule, f"{rules_path}[{i}]")
        name = str(rule_map.get("Name", "")).lower()  # case-insensitive, as S3 accepts it
        if name not in ("prefix", "suffix"):
            r.fail(f"{rules_path}[{i}].Name", "filter rule name must be prefix or suffix")
        elif name in found:
            r.fail(rules_path, f"Cannot specify more than one {name} rule in a filter.")
        else:
            found[name] = str(rule_map.get("Value") or "")
    return found.get("prefix", ""), found.get("suffix", "")


def _events(r: Reader, raw: Any, path: str) -> tuple[str, ...]:
    if not isinstance(raw, list) or not raw:
        r.fail(path, "must be a non-empty list of event types, e.g. [\"s3:ObjectCreated:*\"]")
        return ()
    for event in raw:
        if event not in EVENT_TYPES:
            r.fail(path, f"The event is not supported for notifications: {event!r}")
    return tuple(str(e) for e in raw if e in EVENT_TYPES)


def _target(r: Reader, config: Config, text: Any, path: str) -> FunctionArn | None:
    try:
        arn = FunctionArn.parse(text)
    except ArnError:
        r.fail(path, f"The ARN could not be parsed: {text!r}")
        return None
    fn = config.functions.get(arn.function)
    unauthorized = (f"Unable to validate the following destination configurations: "
                    f"Not authorized to invoke function [{arn}]")
    if arn.region != config.region or arn.account != config.account:
        r.fail(path, f"{unauthorized} (the function must be in region {config.region}, "
                     f"account {config.account})")
    elif fn is None:
        r.fail(path, f"{unauthorized} (no function {arn.function!r} under functions)")
    elif arn.kind == "alias" and arn.qualifier not in fn.aliases:
        r.fail(path, f"{unauthorized} (function {arn.function!r} has no alias "
                     f"{arn.qualifier!r})")
    return arn


def _check_overlaps(r: Reader, notes: tuple[Notification, ...], bucket_path: str) -> None:
    for i, j in overlapping_pairs(notes):
        a, b = notes[i], notes[j]
        where = f"{bucket_path}: configurations {a.id!r} and {b.id!r}"
        if not (a.prefix or a.suffix or b.prefix or b.suffix):
            r.fail(where, "Configurations overlap. Configurations on the same bucket cannot "
                          "share a common event type.")
        else:
            r.fail(where, "Configuration is ambiguously defined. Cannot have overlapping "
                          "suffixes in two rules if the prefixes are overlapping for the same "
                          "event type.")


def _check_destinations(r: Reader, config: Config) -> None:
    for fn in config.functions.values():
        places = [(f"functions.{fn.name}", fn.on_failure, fn.on_success)]
        places += [(f"functions.{fn.name}.aliases.{a.name}", a.overrides.on_failure,
                    a.overrides.on_success) for a in fn.aliases.values()]
        for base, on_failure, on_success in places:
            _check_destination(r, config, fn, on_failure, f"{base}.on_failure")
            if on_success is not None and on_success.kind == "bucket":
                r.fail(f"{base}.on_success", "Amazon S3 buckets are supported as on-failure "
                                             "destinations only")
            _check_destination(r, config, fn, on_success, f"{base}.on_success")


def _check_destination(r: Reader, config: Config, fn: Function, dest: Destination | None,
                       path: str) -> None:
    if dest is not None:
        if dest.kind == "bucket" and not _BUCKET_NAME.match(dest.target):
            r.fail(path, f"invalid bucket name {dest.target!r}")
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
