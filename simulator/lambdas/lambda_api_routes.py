"""The Lambda API's request handling (see `lambda_api.py`), on the server's event loop.

Paths under /2015-03-31/functions/. Errors are Lambda's: the code in `x-amzn-ErrorType`, the
message in a JSON body, the status of the recordings (404 ResourceNotFoundException, 409
ResourceConflictException, 400 InvalidParameterValueException / ValidationException, 403 for
signatures).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, unquote

import structlog
from aiohttp import web

from simulator.core import config_parse
from simulator.core.arn import LATEST
from simulator.core.config import Alias, Config, Function
from simulator.errors import (
    ConfigError,
    InvalidParameterValue,
    LambdaApiError,
    PreconditionFailed,
    RequestTooLarge,
    ResourceConflict,
    ResourceNotFound,
    SimulatorError,
    ValidationFailed,
)
from simulator.lambdas import (
    lambda_api_config,
    lambda_api_functions,
    lambda_api_invoke,
    runtimes,
)
from simulator.lambdas.builds import snapshot_parts
from simulator.lambdas.lambda_api import Workspace
from simulator.serving import Credentials, SigV4Problem, verify_sigv4
from simulator.store import config_edit, config_function_edit, config_source
from simulator.store.versions import code_sha256, file_hashes

log = structlog.get_logger("s3sim")
PREFIX = "/2015-03-31/functions"
# Later operations live under the API version that introduced them (botocore's model).
PREFIXES = (
    PREFIX,
    "/2019-09-25/functions",  # event-invoke config
    "/2017-10-31/functions",  # Put/DeleteFunctionConcurrency
    "/2019-09-30/functions",  # GetFunctionConcurrency
    "/2024-08-31/functions",  # recursion config
)
# Lambda's request size limits: a 50 MB zip (base64 in JSON), and Invoke's 6 MB payload.
MAX_REQUEST = 70167211
MAX_INVOKE_REQUEST = 6291456
# FunctionName patterns of Lambda's API (botocore's model): Invoke's admits `.` and
# `$LATEST.PUBLISHED`; group 11 is the name, group 13 the qualifier in both.
_NAME_PATTERN = (
    r"(arn:(aws[a-zA-Z-]*)?:lambda:)?((eusc-)?[a-z]{2}((-gov)|(-iso([a-z]?)))?-[a-z]+-\d{1}:)?"
    r"(\d{12}:)?(function:)?([a-zA-Z0-9-_]+)(:(\$LATEST|[a-zA-Z0-9-_]+))?"
)
_INVOKE_NAME_PATTERN = (
    r"(arn:(aws[a-zA-Z-]*)?:lambda:)?((eusc-)?[a-z]{2}((-gov)|(-iso([a-z]?)))?-[a-z]+-\d{1}:)?"
    r"(\d{12}:)?(function:)?([a-zA-Z0-9-_\.]+)(:(\$LATEST(\.PUBLISHED)?|[a-zA-Z0-9-_]+))?"
)
_QUALIFIER_PATTERN = r"(|[a-zA-Z0-9$_-]+)"
REVISION_MISMATCH = (
    "The Revision Id provided does not match the latest Revision Id. "
    "Call the GetFunction/GetAlias API to retrieve the latest Revision Id"
)
_SIGNATURE_ERRORS = {
    "missing": ("MissingAuthenticationTokenException", "Missing Authentication Token"),
    "key": (
        "UnrecognizedClientException",
        "The security token included in the request is invalid.",
    ),
    "token": (
        "UnrecognizedClientException",
        "The security token included in the request is invalid.",
    ),
    "expired": ("InvalidSignatureException", "Signature expired"),
    "skewed": ("InvalidSignatureException", "Signature expired: the request time is too skewed"),
    "region": ("InvalidSignatureException", "Credential should be scoped to a valid region."),
    "signature": (
        "InvalidSignatureException",
        "The request signature we calculated does not match the signature you provided. "
        "Check your AWS Secret Access Key and signing method.",
    ),
}


class Routes:
    def __init__(self, workspace: Workspace, credentials: Credentials) -> None:
        self._ws, self._credentials = workspace, credentials

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        request_id = str(uuid.uuid4())
        try:
            limit, operation = _size_limit(request)
            too_large = f"Request must be smaller than {limit} bytes for the {operation} operation"
            if (request.content_length or 0) > limit:
                raise RequestTooLarge(too_large)
            # aiohttp reads 1 MB at most by default; a deployment package may be 50 MB.
            request = request.clone(client_max_size=limit)
            try:
                body = await request.read()  # signed over
            except web.HTTPRequestEntityTooLarge:  # chunked, without a Content-Length
                raise RequestTooLarge(too_large) from None
            verify_sigv4(
                request.method,
                request.raw_path,
                request.headers,
                self._credentials,
                s3=False,
                body=body,
                region=self._ws.config().region,
            )
            response = await self._route(request, request_id)
        except SigV4Problem as problem:
            code, message = _SIGNATURE_ERRORS[problem.kind]
            response = _error(403, code, message)
        except LambdaApiError as exc:
            response = _error(_status(exc), exc.code, exc.message)
        except Exception:  # a bug answers 500, and the server goes on
            log.exception("lambda_api.error", method=request.method, path=request.path)
            response = _error(500, "ServiceException", "The Lambda service encountered an error.")
        response.headers["x-amzn-RequestId"] = request_id
        return response

    async def _route(self, request: web.BaseRequest, request_id: str) -> web.StreamResponse:
        path = request.raw_path.split("?", 1)[0]
        query = dict(parse_qsl(request.query_string, True))
        prefix = next((p for p in PREFIXES if path == p or path.startswith(p + "/")), None)
        if prefix is None:
            raise ResourceNotFound(f"No route for {request.method} {path}")
        parts = [unquote(p) for p in path[len(prefix) :].strip("/").split("/")]
        method, api = request.method, prefix.split("/")[1]
        if parts == [""] and api == "2015-03-31":
            if method == "GET":
                functions = self._config().functions
                return _json(
                    200, {"Functions": [self._configuration(n, LATEST) for n in functions]}
                )
            if method == "POST":
                return _json(201, await lambda_api_functions.create(self, await _body(request)))
        rest = parts[1:]
        invoking = rest == ["invocations"]
        name, qualifier = self._function_name(parts[0], query.get("Qualifier"), invoking)
        if api == "2015-03-31":
            return await self._route_functions(request, method, name, qualifier, rest, request_id)
        body = await _body(request) if method in ("PUT", "POST") else {}
        status, answer = await lambda_api_config.route(
            self, body, api, method, name, qualifier, rest
        )
        return web.Response(status=status) if answer is None else _json(status, answer)

    async def _route_functions(
        self,
        request: web.BaseRequest,
        method: str,
        name: str,
        qualifier: str | None,
        rest: list[str],
        request_id: str,
    ) -> web.StreamResponse:
        if rest == [] and method == "GET":
            return _json(200, lambda_api_functions.get(self, name, qualifier))
        if rest == [] and method == "DELETE":
            await lambda_api_functions.delete(self, name, qualifier)
            return web.Response(status=204)
        if rest == ["aliases"] and method == "GET":
            fn = self._function(name)
            return _json(200, {"Aliases": [self._alias(fn, a) for a in fn.aliases.values()]})
        if rest == ["aliases"] and method == "POST":
            return await self._create_alias(request, name)
        if len(rest) == 2 and rest[0] == "aliases":
            if method == "GET":
                return _json(200, self._alias(self._function(name), self._existing(name, rest[1])))
            if method == "PUT":
                return await self._update_alias(request, name, rest[1])
            if method == "DELETE":
                await lambda_api_functions.delete_alias(self, name, rest[1])
                return web.Response(status=204)
        if rest == ["versions"] and method == "GET":
            numbers = sorted(self._ws.store.published().get(name, frozenset()))
            versions = [LATEST, *(str(n) for n in numbers)]
            self._function(name)
            return _json(200, {"Versions": [self._configuration(name, v, v) for v in versions]})
        if rest == ["versions"] and method == "POST":
            return await self._publish(request, name)
        if rest == ["configuration"] and method == "GET":
            version = self._qualifier(name, qualifier)
            return _json(200, self._configuration(name, version, qualifier))
        if rest == ["configuration"] and method == "PUT":
            body = await _body(request)
            return _json(200, await lambda_api_functions.update_configuration(self, name, body))
        if rest == ["code"] and method == "PUT":
            body = await _body(request)
            return _json(200, await lambda_api_functions.update_code(self, name, body))
        if rest == ["invocations"] and method == "POST":
            return await lambda_api_invoke.invoke(self, request, name, qualifier, request_id)
        raise InvalidParameterValue(f"s3sim does not implement {method} {request.raw_path} yet")

    # -- reading the workspace ---------------------------------------------------------------
    def _config(self) -> Config:
        """config.yaml as it is now (a read right after a write sees the write)."""
        try:
            return config_source.read(self._ws.root / "config.yaml", self._ws.store)
        except ConfigError:
            return self._ws.config()  # mid-edit or broken: the running simulator's last good

    def _function_name(
        self, text: str, param: str | None, invoking: bool = False
    ) -> tuple[str, str | None]:
        """A function name, `name:qualifier`, a partial or a full ARN, and the Qualifier
        parameter -> (name, qualifier), with Lambda's validation messages."""
        pattern = _INVOKE_NAME_PATTERN if invoking else _NAME_PATTERN
        match = re.fullmatch(pattern, text)
        if match is None:
            raise ValidationFailed(_pattern_error(text, "functionName", pattern))
        if param is not None and re.fullmatch(_QUALIFIER_PATTERN, param) is None:
            raise ValidationFailed(_pattern_error(param, "qualifier", _QUALIFIER_PATTERN))
        named = match.group(13)
        if named and param and named != param:
            raise InvalidParameterValue(
                "The derived qualifier from the function name does not match the specified "
                "qualifier."
            )
        return match.group(11), param or named

    # -- writing config.yaml -----------------------------------------------------------------
    async def edit(
        self, function: str, changes: list[config_function_edit.Change], conflict: bool = False
    ) -> None:
        """config.yaml edits of one function's entry, off the loop. A result that would not
        validate is refused with its problems (ResourceConflictException when something
        else in the file still refers to what is being removed)."""
        root = self._ws.root

        def edit() -> None:
            try:
                config_function_edit.edit_function(
                    root / "config.yaml", root / ".s3sim" / "config-edit.lock", function, changes
                )
            except ConfigError as exc:
                message = "; ".join(str(p) for p in exc.problems)
                if conflict:
                    raise ResourceConflict(f"config.yaml still refers to it: {message}") from None
                first = exc.problems[0].message
                if first.startswith("1 validation error") and len(exc.problems) == 1:
                    raise ValidationFailed(first) from None
                raise InvalidParameterValue(message) from None

        await asyncio.get_running_loop().run_in_executor(None, _guarded(edit))

    def check_revision(self, given: Any, current: str) -> None:
        if given is not None and given != current:
            raise PreconditionFailed(REVISION_MISMATCH)

    def latest_revision(self, function: str) -> str:
        return str(self._configuration(function, LATEST)["RevisionId"])

    def _function(self, name: str) -> Function:
        config = self._config()
        fn = config.functions.get(name)
        if fn is None:
            raise ResourceNotFound(f"Function not found: {config.function_arn(name)}")
        return fn

    def _existing(self, function: str, alias: str) -> Alias:
        fn = self._function(function)
        found = fn.aliases.get(alias)
        if found is None:
            arn = self._config().function_arn(function, alias)
            raise ResourceNotFound(f"Cannot find alias arn: {arn}")
        return found

    def _qualifier(self, function: str, qualifier: str | None) -> str:
        fn = self._function(function)
        if qualifier is None or qualifier == LATEST:
            return LATEST
        if qualifier in fn.aliases:
            return fn.aliases[qualifier].version
        if qualifier.isdigit() and int(qualifier) in self._ws.store.published().get(function, ()):
            return qualifier
        raise ResourceNotFound(
            f"Function not found: {self._config().function_arn(function, qualifier)}"
        )

    def _alias(self, fn: Function, alias: Alias) -> dict[str, Any]:
        config = self._config()
        body: dict[str, Any] = {
            "AliasArn": str(config.function_arn(fn.name, alias.name)),
            "Description": getattr(alias, "description", "") or "",
            "FunctionVersion": alias.version,
            "Name": alias.name,
            "RevisionId": str(
                uuid.uuid5(
                    uuid.NAMESPACE_URL,
                    f"{fn.name}:{alias.name}:{alias.version}:{sorted(alias.weights.items())}",
                )
            ),
        }
        if alias.weights:
            body["RoutingConfig"] = {"AdditionalVersionWeights": dict(alias.weights)}
        return body

    def _configuration(
        self, function: str, version: str, shown_as: str | None = None
    ) -> dict[str, Any]:
        """FunctionConfiguration of `version`; its ARN names `shown_as` (an alias, or an
        explicit $LATEST) when given, as GetFunction by alias answers."""
        config = self._config()
        fn = self._function(function)
        if version == LATEST:
            settings, folder = fn.version_settings(), self._ws.root / "functions" / function
            sha = code_sha256(file_hashes(folder)) if folder.is_dir() else ""
            modified = _mtime(folder)
            # $LATEST's revision moves with its code, its settings and each publish (the
            # recordings: publishing gives $LATEST a new RevisionId).
            last = self._ws.store.last_numbers().get(function, 0)
            revision = f"{function}:{sha}:{json.dumps(settings, sort_keys=True)}:{last}"
        else:
            published = self._ws.store.load(function, int(version), verify=False)
            settings, sha = published.settings, published.code_sha256
            # A version's Description is PublishVersion's (version_lifecycle), else the function's.
            settings = {**settings, "description": published.description}
            modified = published.created
            revision = f"{function}:{version}:{sha}"
        arn = str(
            config.function_arn(function, shown_as or (None if version == LATEST else version))
        )
        runtime = str(settings.get("runtime") or runtimes.DEFAULT)  # the one that runs it
        return {
            "FunctionName": function,
            "FunctionArn": arn,
            "Runtime": runtime,
            "Role": f"arn:aws:iam::{config.account}:role/s3sim-local",
            "Handler": settings["handler"],
            "CodeSize": 0,
            "Description": settings.get("description", ""),
            "Timeout": int(settings["timeout"]),
            "MemorySize": int(settings["memory"]),
            "LastModified": modified,
            "CodeSha256": sha,
            "Version": version,
            "Environment": {"Variables": dict(settings.get("environment", {}))},
            "TracingConfig": {"Mode": "PassThrough"},
            "RevisionId": str(uuid.uuid5(uuid.NAMESPACE_URL, revision)),
            "State": "Active",
            "LastUpdateStatus": "Successful",
            "PackageType": "Zip",
            "Architectures": ["x86_64"],
            "EphemeralStorage": {"Size": 512},
            "SnapStart": {"ApplyOn": "None", "OptimizationStatus": "Off"},
            "LoggingConfig": {
                "LogFormat": settings.get("log_format") or "Text",
                "LogGroup": f"/aws/lambda/{function}",
                **(
                    {"ApplicationLogLevel": settings["log_level"]}
                    if settings.get("log_level")
                    else {}
                ),
            },
        }

    # -- writing -----------------------------------------------------------------------------
    async def _create_alias(self, request: web.BaseRequest, function: str) -> web.Response:
        body = await _body(request)
        name = str(body.get("Name", ""))
        fn = self._function(function)
        if name in fn.aliases:
            arn = self._config().function_arn(function, name)
            raise ResourceConflict(f"Alias already exists: {arn}")
        await self._set_alias(function, name, body)
        return _json(201, self._alias(self._function(function), self._existing(function, name)))

    async def _update_alias(
        self, request: web.BaseRequest, function: str, name: str
    ) -> web.Response:
        body = await _body(request)
        fn = self._function(function)
        if name not in fn.aliases:
            arn = self._config().function_arn(function, name)
            raise ResourceNotFound(f"Alias not found: {arn}")
        current = fn.aliases[name]
        self.check_revision(body.get("RevisionId"), self._alias(fn, current)["RevisionId"])
        body.setdefault("FunctionVersion", current.version)
        if "RoutingConfig" not in body:
            body["RoutingConfig"] = {"AdditionalVersionWeights": dict(current.weights)}
        await self._set_alias(function, name, body)
        return _json(200, self._alias(self._function(function), self._existing(function, name)))

    async def _set_alias(self, function: str, name: str, body: dict[str, Any]) -> None:
        version = str(body.get("FunctionVersion", ""))
        weights = (body.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {}
        self._check_alias(function, name, version, weights)
        parsed = {int(k): float(v) for k, v in weights.items()}
        root = self._ws.root

        def edit() -> None:
            if self._ws.edit_alias is not None:
                self._ws.edit_alias(function, name, version, parsed)
                return
            config_edit.set_alias(
                root / "config.yaml",
                root / ".s3sim" / "config-edit.lock",
                function,
                name,
                version,
                parsed,
                self._ws.store,
            )

        await asyncio.get_running_loop().run_in_executor(None, _guarded(edit))

    def _check_alias(self, function: str, name: str, version: str, weights: dict[str, Any]) -> None:
        """The alias checks of a config.yaml edit, with AWS's error types."""
        raw = {
            "functions": {function: {"aliases": {name: {"version": version, "weights": weights}}}}
        }
        try:
            config_parse.parse(raw)
        except ConfigError as exc:
            message = exc.problems[0].message
            if message.startswith("1 validation error"):
                raise ValidationFailed(message) from None
            raise InvalidParameterValue(message) from None
        published = self._ws.store.published().get(function, frozenset())
        for v in [version, *weights]:
            if v != LATEST and int(v) not in published:
                raise ResourceNotFound(
                    f"Function not found: {self._config().function_arn(function, str(v))}"
                )

    async def _publish(self, request: web.BaseRequest, function: str) -> web.Response:
        body = await _body(request)
        self._function(function)
        expected = body.get("CodeSha256")
        folder = self._ws.root / "functions" / function
        current = code_sha256(file_hashes(folder)) if folder.is_dir() else ""
        self.check_revision(body.get("RevisionId"), self.latest_revision(function))
        if expected is not None and expected != current:
            raise InvalidParameterValue(
                f"CodeSHA256 ({expected}) is different from current CodeSHA256 in $LATEST "
                f"({current}). Please try again with the CodeSHA256 in $LATEST."
            )
        version = await self.publish_latest(function, body.get("Description"))
        return _json(201, self._configuration(function, version))

    async def publish_latest(self, function: str, description: str | None = None) -> str:
        """`s3sim publish` of $LATEST as it is now; returns the version number (the last
        one when nothing changed since, as in Lambda)."""
        fn = self._function(function)
        folder = self._ws.root / "functions" / function

        def publish() -> Any:
            build, layers = snapshot_parts(self._ws.root, fn)
            return self._ws.store.publish(fn, folder, description, build, layers)[0]

        version = await asyncio.get_running_loop().run_in_executor(None, _guarded(publish))
        return str(version.number)


def _pattern_error(value: str, field: str, pattern: str) -> str:
    return (
        f"1 validation error detected: Value '{value}' at '{field}' failed to satisfy "
        f"constraint: Member must satisfy regular expression pattern: {pattern}"
    )


def _size_limit(request: web.BaseRequest) -> tuple[int, str]:
    """Lambda's request size limit and the operation its message names."""
    path = request.path.rstrip("/")
    if path.endswith("/invocations"):
        return MAX_INVOKE_REQUEST, "InvokeFunction"
    if path.endswith("/code"):
        return MAX_REQUEST, "UpdateFunctionCode"
    if request.method == "POST" and path.endswith("/functions"):
        return MAX_REQUEST, "CreateFunction"
    return MAX_REQUEST, "this"


async def _body(request: web.BaseRequest) -> dict[str, Any]:
    raw = await request.read()
    try:
        body = json.loads(raw) if raw else {}
    except ValueError:
        raise InvalidParameterValue("The request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise InvalidParameterValue("The request body must be a JSON object")
    return body


def _guarded(work: Callable[[], Any]) -> Callable[[], Any]:
    """Errors of the workspace's own commands, as Lambda's."""

    def run() -> Any:
        try:
            return work()
        except LambdaApiError:
            raise
        except ConfigError as exc:
            raise InvalidParameterValue(str(exc)) from None
        except SimulatorError as exc:
            raise InvalidParameterValue(str(exc)) from None

    return run


def _status(exc: LambdaApiError) -> int:
    return {
        "ResourceNotFoundException": 404,
        "ResourceConflictException": 409,
        "PreconditionFailedException": 412,
        "RequestEntityTooLargeException": 413,
        "TooManyRequestsException": 429,
    }.get(exc.code, 400)


def _error(status: int, code: str, message: str) -> web.Response:
    capital = code in ("ResourceNotFoundException", "RequestEntityTooLargeException")
    body: dict[str, Any] = {"Message" if capital else "message": message}
    if (code not in ("ValidationException",) and status < 403) or code in (
        "ResourceNotFoundException",
        "PreconditionFailedException",
    ):
        body["Type"] = "User"
    return web.Response(
        status=status,
        body=json.dumps(body).encode(),
        content_type="application/json",
        headers={"x-amzn-ErrorType": code},
    )


def _json(status: int, body: Any) -> web.Response:
    return web.Response(
        status=status, body=json.dumps(body).encode(), content_type="application/json"
    )


def _mtime(folder: Any) -> str:
    try:
        stamp = dt.datetime.fromtimestamp(folder.stat().st_mtime, dt.UTC)
    except OSError:
        stamp = dt.datetime.now(dt.UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "+0000"
