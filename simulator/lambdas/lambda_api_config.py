"""The Lambda API's per-function settings (see `lambda_api_routes.py`), on the config.yaml
keys that govern them:

- Get/Put/Update/DeleteFunctionEventInvokeConfig (2019-09-25): `retries`, `max_event_age`,
  `on_failure`, `on_success` of the function (no Qualifier, or $LATEST) or of an alias (its
  own overrides). config.yaml has no per-version settings, so a version Qualifier is refused.
- Put/Get/DeleteFunctionConcurrency (2017-10-31, 2019-09-30): `reserved_concurrency`.
- Put/GetFunctionRecursionConfig (2024-08-31): `recursive_loop`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from simulator.core.arn import LATEST
from simulator.core.config import Destination, Function
from simulator.errors import InvalidParameterValue, ResourceNotFound, ValidationFailed
from simulator.store.config_function_edit import REMOVE, Change, entry, function_entry

if TYPE_CHECKING:
    from simulator.lambdas.lambda_api_routes import Routes

Answer = tuple[int, Any]  # (HTTP status, JSON body or None for an empty one)
# EventInvokeConfig field -> config.yaml key
_ASYNC_KEYS = {
    "MaximumRetryAttempts": "retries",
    "MaximumEventAgeInSeconds": "max_event_age",
}
_DESTINATION_KEYS = {"OnFailure": "on_failure", "OnSuccess": "on_success"}
_ALL_ASYNC = (*_ASYNC_KEYS.values(), *_DESTINATION_KEYS.values())
RECURSIVE_LOOPS = ("Allow", "Terminate")  # Lambda's enum, in the order its message lists it


async def route(
    r: Routes,
    body: dict[str, Any],
    api: str,
    method: str,
    name: str,
    qualifier: str | None,
    rest: list[str],
) -> Answer:
    if api == "2019-09-25" and rest == ["event-invoke-config"]:
        target = _target(r, name, qualifier)
        if method == "GET":
            return 200, _event_invoke_config(r, name, target)
        if method in ("PUT", "POST"):
            return 200, await _put_event_invoke_config(r, name, target, body, method == "PUT")
        if method == "DELETE":
            await _delete_event_invoke_config(r, name, target)
            return 204, None
    if api == "2019-09-25" and rest == ["event-invoke-config", "list"] and method == "GET":
        return 200, {"FunctionEventInvokeConfigs": _all_event_invoke_configs(r, name)}
    if rest == ["concurrency"]:
        return await _concurrency(r, api, method, name, body)
    if api == "2024-08-31" and rest == ["recursion-config"]:
        return await _recursion(r, method, name, body)
    raise InvalidParameterValue(f"s3sim does not implement {method} /{api}/functions/.../{rest}")


# -- event-invoke config ------------------------------------------------------------------------
def _target(r: Routes, name: str, qualifier: str | None) -> str | None:
    """None for the function's own settings ($LATEST), else the alias name."""
    version = r._qualifier(name, qualifier)  # 404 for an unknown alias or version
    if qualifier is None or qualifier == LATEST:
        return None
    if qualifier == version and qualifier not in r._function(name).aliases:
        raise InvalidParameterValue(
            "s3sim keeps event-invoke config per function and per alias (config.yaml has no "
            f"per-version settings); put it on an alias that points at version {version}"
        )
    return qualifier


def _written(r: Routes, name: str, alias: str | None) -> Mapping[str, Any]:
    """The target's keys as config.yaml has them (an alias written as a bare version has
    none)."""
    raw = function_entry(r._ws.root / "config.yaml", name)
    found = raw if alias is None else entry(raw, ["aliases", alias])
    return found if isinstance(found, Mapping) else {}


def _event_invoke_config(r: Routes, name: str, alias: str | None) -> dict[str, Any]:
    written = _written(r, name, alias)
    arn = str(r._config().function_arn(name, alias or LATEST))
    if not any(k in written for k in _ALL_ASYNC):
        raise ResourceNotFound(f"The function {arn} doesn't have an EventInvokeConfig")
    fn = r._function(name)
    values = fn.async_config(alias)
    answer: dict[str, Any] = {
        "LastModified": (r._ws.root / "config.yaml").stat().st_mtime,
        "FunctionArn": arn,
    }
    if "retries" in written:
        answer["MaximumRetryAttempts"] = values.retries
    if "max_event_age" in written:
        answer["MaximumEventAgeInSeconds"] = values.max_event_age_s
    answer["DestinationConfig"] = {
        field: _destination(values.on_failure if key == "on_failure" else values.on_success)
        if key in written
        else {}
        for field, key in _DESTINATION_KEYS.items()
    }
    return answer


def _destination(destination: Destination | None) -> dict[str, str]:
    return {} if destination is None else {"Destination": str(destination)}


def _all_event_invoke_configs(r: Routes, name: str) -> list[dict[str, Any]]:
    found = []
    for alias in [None, *r._function(name).aliases]:
        try:
            found.append(_event_invoke_config(r, name, alias))
        except ResourceNotFound:
            continue
    return found


async def _put_event_invoke_config(
    r: Routes, name: str, alias: str | None, body: dict[str, Any], replace: bool
) -> dict[str, Any]:
    """Put replaces the whole config; Update changes the fields it is given."""
    written = dict(_written(r, name, alias))
    if not replace:
        _event_invoke_config(r, name, alias)  # Update needs one to update: 404 otherwise
    wanted: dict[str, Any] = {}
    for field, key in _ASYNC_KEYS.items():
        if field in body:
            wanted[key] = body[field]
    for field, key in _DESTINATION_KEYS.items():
        if field in (body.get("DestinationConfig") or {}):
            target = (body["DestinationConfig"][field] or {}).get("Destination")
            wanted[key] = target if target else REMOVE
    if replace:
        wanted = {key: wanted.get(key, REMOVE) for key in _ALL_ASYNC}
    await r.edit(name, _async_changes(r, name, alias, written, wanted))
    return _event_invoke_config(r, name, alias)


async def _delete_event_invoke_config(r: Routes, name: str, alias: str | None) -> None:
    _event_invoke_config(r, name, alias)  # 404 when there is none
    written = dict(_written(r, name, alias))
    await r.edit(name, _async_changes(r, name, alias, written, dict.fromkeys(_ALL_ASYNC, REMOVE)))


def _async_changes(
    r: Routes, name: str, alias: str | None, written: dict[str, Any], wanted: dict[str, Any]
) -> list[Change]:
    """Function level: one change per key. An alias is rewritten whole (a bare `prod: 3`
    becomes `{version: 3, retries: 0}`, and back when no setting of its own is left)."""
    if alias is None:
        return [
            ((key,), value)
            for key, value in wanted.items()
            if not (value is REMOVE and key not in written)
            and (value is REMOVE or _differs(written.get(key), value))
        ]
    current = _written(r, name, alias) or {"version": r._function(name).aliases[alias].version}
    merged = dict(current)
    for key, value in wanted.items():
        if value is REMOVE:
            merged.pop(key, None)
        elif _differs(merged.get(key), value):
            merged[key] = value
    if set(merged) == {"version"}:
        return [(("aliases", alias), str(merged["version"]))]
    return [(("aliases", alias), merged)]


def _differs(old: Any, new: Any) -> bool:
    """A destination written as {bucket: x} equals its ARN arn:aws:s3:::x."""
    if old is None:
        return True
    if isinstance(old, Mapping) and len(old) == 1:
        kind, target = next(iter(old.items()))
        old = f"arn:aws:s3:::{target}" if kind == "bucket" else target
    return bool(old != new)


# -- concurrency --------------------------------------------------------------------------------
async def _concurrency(r: Routes, api: str, method: str, name: str, body: dict[str, Any]) -> Answer:
    fn = r._function(name)
    if api == "2019-09-30" and method == "GET":
        reserved = fn.reserved_concurrency
        return 200, {} if reserved is None else {"ReservedConcurrentExecutions": reserved}
    if api == "2017-10-31" and method == "PUT":
        if "ReservedConcurrentExecutions" not in body:
            raise ValidationFailed(
                "1 validation error detected: Value null at 'reservedConcurrentExecutions' "
                "failed to satisfy constraint: Member must not be null"
            )
        value = body["ReservedConcurrentExecutions"]
        if value != fn.reserved_concurrency:
            await r.edit(name, [(("reserved_concurrency",), value)])
        return 200, {"ReservedConcurrentExecutions": r._function(name).reserved_concurrency}
    if api == "2017-10-31" and method == "DELETE":
        if fn.reserved_concurrency is not None:
            await r.edit(name, [(("reserved_concurrency",), REMOVE)])
        return 204, None
    raise InvalidParameterValue(f"s3sim does not implement {method} /{api}/.../concurrency")


# -- recursion ----------------------------------------------------------------------------------
async def _recursion(r: Routes, method: str, name: str, body: dict[str, Any]) -> Answer:
    fn: Function = r._function(name)
    if method == "GET":
        return 200, {"RecursiveLoop": fn.recursive_loop}
    if method == "PUT":
        value = body.get("RecursiveLoop")
        if value not in RECURSIVE_LOOPS:
            raise ValidationFailed(
                f"1 validation error detected: Value '{value}' at 'recursiveLoop' failed to "
                f"satisfy constraint: Member must satisfy enum value set: "
                f"[{', '.join(RECURSIVE_LOOPS)}]"
            )
        if value != fn.recursive_loop:
            await r.edit(name, [(("recursive_loop",), value)])
        return 200, {"RecursiveLoop": value}
    raise InvalidParameterValue(f"s3sim does not implement {method} recursion-config")
