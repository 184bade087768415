"""The Lambda API's function operations (see `lambda_api_routes.py`): GetFunction,
CreateFunction, UpdateFunctionCode, UpdateFunctionConfiguration, DeleteFunction, DeleteAlias.

A function is its folder (`functions/<name>/`, $LATEST's code) and its entry in config.yaml;
settings are written as the config.yaml keys they map to, one splice per key that changes.
What config.yaml cannot express (Role, VpcConfig, Layers as ARNs, ...) is accepted and
ignored, and logged as such.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from simulator.core.arn import LATEST
from simulator.core.config import Function
from simulator.errors import InvalidParameterValue, ResourceConflict, ResourceNotFound
from simulator.lambdas import runtimes
from simulator.store import function_code
from simulator.store.config_function_edit import REMOVE, Change

if TYPE_CHECKING:
    from simulator.lambdas.lambda_api_routes import Routes

log = structlog.get_logger("s3sim")
# FunctionConfiguration field -> (config.yaml key, the model's attribute)
_SETTINGS = {
    "Handler": ("handler", "handler"),
    "Timeout": ("timeout", "timeout_s"),
    "MemorySize": ("memory", "memory_mb"),
    "Description": ("description", "description"),
}
_HANDLED = {
    "FunctionName",
    "Code",
    "Publish",
    "RevisionId",
    "Runtime",
    "Environment",
    "LoggingConfig",
    "PackageType",
    *_SETTINGS,
}


# -- reading ------------------------------------------------------------------------------------
def get(r: Routes, name: str, qualifier: str | None) -> dict[str, Any]:
    """GetFunction. Code.Location is the code folder as a file:// URL (Lambda's is a
    presigned S3 URL of the zip)."""
    version = r._qualifier(name, qualifier)
    if version == LATEST:
        folder = r._ws.root / "functions" / name
    else:
        folder = r._ws.store.load(name, int(version), verify=False).code_dir
    answer: dict[str, Any] = {
        "Configuration": r._configuration(name, version, qualifier),
        "Code": {"RepositoryType": "S3", "Location": folder.resolve().as_uri()},
    }
    reserved = r._function(name).reserved_concurrency
    if reserved is not None:
        answer["Concurrency"] = {"ReservedConcurrentExecutions": reserved}
    return answer


# -- creating and updating ----------------------------------------------------------------------
async def create(r: Routes, body: dict[str, Any]) -> dict[str, Any]:
    name, qualifier = r._function_name(str(body.get("FunctionName", "")), None)
    if qualifier is not None:
        raise InvalidParameterValue(
            f"FunctionName {body.get('FunctionName')} must not name a version or an alias"
        )
    folder = r._ws.root / "functions" / name
    if name in r._config().functions:
        raise ResourceConflict(f"Function already exist: {name}")
    if folder.exists():  # code config.yaml does not know: never overwritten
        raise ResourceConflict(
            f"functions/{name}/ already exists in the workspace but config.yaml has no "
            f"function {name}: add it to config.yaml, or move the folder away"
        )
    _check_package_type(body)
    package = _package(r._ws.root, body.get("Code"))
    changes = settings_changes(body, None) or [((), {})]
    await _run(function_code.unpack_into, package, folder)
    try:
        await r.edit(name, changes)
    except BaseException:
        await _run(function_code.remove_tree, folder)
        raise
    _log_ignored(name, body)
    if body.get("Publish"):
        answer = r._configuration(name, await r.publish_latest(name))
        # As recorded (publish_version_on_create_and_republish): Version "1", but the
        # unqualified ARN.
        answer["FunctionArn"] = str(r._config().function_arn(name))
        return answer
    return r._configuration(name, LATEST)


async def update_code(r: Routes, name: str, body: dict[str, Any]) -> dict[str, Any]:
    r._function(name)
    r.check_revision(body.get("RevisionId"), r.latest_revision(name))
    package = _package(r._ws.root, body)
    if not body.get("DryRun"):
        await _run(function_code.unpack_into, package, r._ws.root / "functions" / name)
        r._ws.retire_latest(name)
    if body.get("Publish") and not body.get("DryRun"):
        return r._configuration(name, await r.publish_latest(name))
    return r._configuration(name, LATEST)


async def update_configuration(r: Routes, name: str, body: dict[str, Any]) -> dict[str, Any]:
    fn = r._function(name)
    r.check_revision(body.get("RevisionId"), r.latest_revision(name))
    changes = settings_changes(body, fn)
    if changes:
        await r.edit(name, changes)
    _log_ignored(name, body)
    return r._configuration(name, LATEST)


def settings_changes(body: dict[str, Any], fn: Function | None) -> list[Change]:
    """The config.yaml keys a request changes (none for a value the function has already,
    so an update that changes nothing writes nothing)."""
    current = fn or Function(name="")
    changes: list[Change] = []
    for field, (key, attribute) in _SETTINGS.items():
        if field in body and (fn is None or body[field] != getattr(current, attribute)):
            changes.append(((key,), body[field]))
    runtime = body.get("Runtime")
    if runtime is not None and runtime != (current.runtime or runtimes.DEFAULT):
        changes.append((("runtime",), runtime))
    if "Environment" in body:
        variables = (body["Environment"] or {}).get("Variables") or {}
        if dict(variables) != dict(current.environment) or (fn is None and variables):
            changes.append((("environment",), dict(variables) if variables else REMOVE))
    logging = body.get("LoggingConfig") or {}
    for field, key in (("LogFormat", "log_format"), ("ApplicationLogLevel", "log_level")):
        if field in logging and logging[field] != getattr(current, key):
            changes.append(((key,), logging[field]))
    return changes


def _check_package_type(body: dict[str, Any]) -> None:
    if body.get("PackageType", "Zip") != "Zip":
        raise InvalidParameterValue("s3sim runs .zip deployment packages only (PackageType Zip)")


def _package(root: Path, code: Any) -> bytes:
    """The zip of a request: `ZipFile` (base64 in JSON), or `S3Bucket`/`S3Key` read from the
    workspace's bucket folder."""
    if not isinstance(code, dict):
        raise InvalidParameterValue("Please provide a source for function code.")
    if code.get("ZipFile") is not None:
        try:
            return base64.b64decode(str(code["ZipFile"]), validate=True)
        except (binascii.Error, ValueError):
            raise InvalidParameterValue(function_code.UNZIP_FAILED) from None
    if code.get("S3Bucket") and code.get("S3Key"):
        return _bucket_object(root, str(code["S3Bucket"]), str(code["S3Key"]))
    if code.get("ImageUri"):
        raise InvalidParameterValue("s3sim runs .zip deployment packages only (no ImageUri)")
    raise InvalidParameterValue("Please provide a source for function code.")


def _bucket_object(root: Path, bucket: str, key: str) -> bytes:
    buckets = (root / "buckets").resolve()
    path = (buckets / bucket / key).resolve()
    if buckets not in path.parents or not path.is_file():
        raise InvalidParameterValue(
            "Error occurred while GetObject. S3 Error Code: NoSuchKey. S3 Error Message: "
            "The specified key does not exist."
        )
    return path.read_bytes()


def _log_ignored(name: str, body: dict[str, Any]) -> None:
    ignored = sorted(k for k in body if k not in _HANDLED)
    if ignored:
        log.info("lambda_api.settings_ignored", function=name, settings=ignored)


# -- deleting -----------------------------------------------------------------------------------
async def delete(r: Routes, name: str, qualifier: str | None) -> None:
    """DeleteFunction: a published version (Qualifier), or the whole function (its entry in
    config.yaml, its folder and its versions). The checks run in Lambda's order."""
    if qualifier is not None and qualifier != LATEST and not qualifier.isdigit():
        raise InvalidParameterValue("Deletion of aliases is not currently supported.")
    if qualifier == LATEST:
        raise InvalidParameterValue(
            "$LATEST version cannot be deleted without deleting the function."
        )
    config = r._config()
    fn = config.functions.get(name)
    if fn is None:
        raise ResourceNotFound(f"Function not found: {config.function_arn(name)}")
    if qualifier is None:
        await r.edit(name, [((), REMOVE)], conflict=True)
        await _run(function_code.remove_tree, r._ws.root / "functions" / name)
        await _run(r._ws.store.delete_function, name)
        r._ws.retire_latest(name)
        return
    users = [a.name for a in fn.aliases.values() if qualifier in (a.version, *a.weights)]
    if users:
        raise ResourceConflict(
            "Unable to delete version because the following aliases reference it: "
            f"[{', '.join(users)}]"
        )
    for bucket in config.buckets.values():
        for note in bucket.notifications:
            if note.function_arn.function == name and note.function_arn.qualifier == qualifier:
                raise ResourceConflict(
                    f"config.yaml still refers to it: buckets.{bucket.name} notification "
                    f"{note.id} invokes {note.function_arn}"
                )
    await _run(r._ws.store.delete, name, int(qualifier))


async def delete_alias(r: Routes, name: str, alias: str) -> None:
    """DeleteAlias: idempotent (a missing alias answers 204, as recorded)."""
    if alias in r._function(name).aliases:
        await r.edit(name, [(("aliases", alias), REMOVE)], conflict=True)


async def _run(work: Any, *args: Any) -> Any:
    return await asyncio.get_running_loop().run_in_executor(None, work, *args)
