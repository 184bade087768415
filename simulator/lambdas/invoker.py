"""One invocation: resolve the ARN, check out an environment, run, log START/END/REPORT."""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import random
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from simulator.core import aliases, lambda_env, lambda_errors, lineage
from simulator.core.arn import LATEST, FunctionArn
from simulator.core.config import Config, Function
from simulator.errors import (
    LambdaApiError,
    RuntimeUnavailable,
    SimulatorError,
    VersionIntegrityError,
)
from simulator.lambdas.builds import Builds
from simulator.lambdas.environment import Environment, Result, Spec
from simulator.lambdas.pool import Pool
from simulator.lambdas.runtimes import Runtime, Runtimes
from simulator.logs import report_line
from simulator.store.versions import VersionStore

log = structlog.get_logger("s3sim")
INIT_LIMIT_S = 10.0  # Lambda's init phase limit for on-demand functions
RUNTIME_UNAVAILABLE = "Runtime.Unavailable"


@dataclass(frozen=True, kw_only=True)
class Invocation:
    request_id: str
    invoked: str  # the ARN invoked (often an alias ARN)
    function: str
    version: str | None = None  # the executed version; None when the ARN did not resolve
    alias: str | None = None
    result: Result
    cold: bool = False


class Invoker:
    def __init__(
        self,
        workspace: Path,
        pool: Pool,
        store: VersionStore,
        published: Callable[[], Mapping[str, frozenset[int]]],
        rng: random.Random,
        runtimes: Runtimes,
        builds: Builds,
    ) -> None:
        self._workspace = workspace
        self._runtimes = runtimes
        self._builds = builds
        self._pool = pool
        self._store = store
        self._published = published
        self._rng = rng
        self._rng_lock = threading.Lock()
        # Told every resolved invocation's end (the deployments' rollback conditions).
        self.observe: Callable[[Invocation], None] | None = None

    def _random(self) -> float:
        with self._rng_lock:
            return self._rng.random()

    def invoke(
        self,
        config: Config,
        arn: FunctionArn,
        event: Any,
        request_id: str,
        chain: str | None = None,
        *,
        client_context: str | None = None,
        log_sink: Callable[[str], None] | None = None,
        **fields: Any,
    ) -> Invocation:
        """`chain`: the lineage this invocation carries (core/lineage.py); None starts one.
        `client_context` is the JSON the handler gets as context.client_context;
        `log_sink` receives this invocation's log stream lines (START, output, END, REPORT),
        for Invoke's LogType=Tail."""
        if chain is None:
            chain = lineage.step("", str(arn.unqualified)).lineage
        bound = log.bind(request_id=request_id, function=arn.function, **fields)
        try:
            resolution = aliases.resolve(config, self._published(), arn, self._random)
        except LambdaApiError as exc:
            bound.error("invoke.failed", arn=str(arn), error_type=exc.code, error=exc.message)
            return Invocation(
                request_id=request_id,
                invoked=str(arn),
                function=arn.function,
                result=_failure(exc.code, exc.message),
            )
        bound = bound.bind(version=resolution.version, alias=resolution.alias)
        if resolution.alias is not None:
            bound.info(
                "alias.resolved", arn=str(arn), alias=resolution.alias, version=resolution.version
            )
        try:
            spec = self.spec(config, resolution.function, resolution.version)
        except SimulatorError as exc:
            kind = (
                RUNTIME_UNAVAILABLE
                if isinstance(exc, RuntimeUnavailable)
                else lambda_errors.VERSION_INTEGRITY
            )
            bound.error("invoke.failed", error_type=kind, error=str(exc))
            result, cold = _failure(kind, str(exc)), False
        else:
            result, cold = self._run(
                spec, arn, event, request_id, chain, bound, client_context, log_sink or _discard
            )
        invocation = Invocation(
            request_id=request_id,
            invoked=str(arn),
            function=arn.function,
            version=resolution.version,
            alias=resolution.alias,
            result=result,
            cold=cold,
        )
        if self.observe is not None:
            self.observe(invocation)
        return invocation

    def spec(self, config: Config, function: str, version: str) -> Spec:
        fn = config.functions[function]
        if version == LATEST:
            code_dir, settings = self._workspace / "functions" / function, fn.version_settings()
            generation = self._pool.generation(function)
            runtime = self._runtimes.resolve(settings.get("runtime"))
            build = None if runtime.custom else self._builds.current(function, code_dir, runtime)
            layers = self.layer_dirs(fn)
        else:
            published = self._store.load(function, int(version), verify=False)
            code_dir, settings, generation = published.code_dir, published.settings, 0
            runtime = self._runtimes.resolve(settings.get("runtime"))
            build, layers = published.build_dir, published.layer_dirs
        return Spec(
            function,
            version,
            code_dir,
            settings["handler"],
            int(settings["timeout"]),
            int(settings["memory"]),
            settings["environment"],
            config.region,
            runtime,
            generation,
            self._workspace / ".s3sim" / "pycache",
            cache_bytecode=version != LATEST,
            import_path=import_path(runtime, build, layers),
            read_only=(self._workspace / "buckets",),
            layers=layers,
            logging={k: str(settings[k]) for k in ("log_format", "log_level") if settings.get(k)},
        )

    def layer_dirs(self, fn: Function) -> tuple[Path, ...]:
        """$LATEST's layers: folders of the workspace, which must exist."""
        folders = tuple(self._workspace / layer for layer in fn.layers)
        for layer, folder in zip(fn.layers, folders, strict=True):
            if not folder.is_dir():
                raise RuntimeUnavailable(
                    f"layer {layer!r} of function {fn.name} is not a folder of the workspace"
                )
        return folders

    def _run(
        self,
        spec: Spec,
        arn: FunctionArn,
        event: Any,
        request_id: str,
        chain: str,
        bound: Any,
        client_context: str | None,
        sink: Callable[[str], None],
    ) -> tuple[Result, bool]:
        env, cold = self._pool.checkout(spec)
        on_output = _output_logger(bound, sink)
        try:
            if cold:
                failure = self._start(env, spec, on_output, request_id)
                if failure is not None:
                    self._log_start(bound, spec, sink, request_id)
                    self._log_finish(bound, spec, failure, request_id, sink)
                    return failure, cold
            self._log_start(bound, spec, sink, request_id)
            deadline_ms = int(time.time() * 1000) + spec.timeout_s * 1000
            trace = lambda_env.trace_header(
                int(time.time()), secrets.token_hex(12), secrets.token_hex(8), chain
            )
            result = env.invoke(
                request_id, str(arn), event, on_output, deadline_ms, trace, client_context
            )
            if cold:
                result = _with_init(result, env.init_ms)
            self._log_finish(bound, spec, result, request_id, sink)
            return result, cold
        finally:
            self._pool.checkin(env)

    def _start(
        self, env: Environment, spec: Spec, on_output: Callable[[str], None], request_id: str
    ) -> Result | None:
        if spec.version != LATEST:  # sealed code and settings, checked at every start
            try:
                self._store.verify(spec.function, int(spec.version))
            except SimulatorError as exc:
                _log_integrity(exc, spec)
                return _failure(lambda_errors.VERSION_INTEGRITY, str(exc), environment_lost=True)
        log.bind(request_id=request_id, function=spec.function, version=spec.version).info(
            "invoke.init_start",
            runtime=spec.runtime.version_name,
            runtime_arn=spec.runtime.version_arn(spec.region),
        )
        spare = self._pool.spares.take(spec.runtime)
        return env.start(on_output, time.monotonic() + INIT_LIMIT_S, spare)

    @staticmethod
    def _log_start(bound: Any, spec: Spec, sink: Callable[[str], None], request_id: str) -> None:
        bound.info("invoke.start", version=spec.version)
        sink(f"START RequestId: {request_id} Version: {spec.version}")

    @staticmethod
    def _log_finish(
        bound: Any, spec: Spec, result: Result, request_id: str, sink: Callable[[str], None]
    ) -> None:
        if result.error_type == lambda_errors.TIMED_OUT:
            stamp = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")
            message = (
                f"{stamp.replace('+00:00', 'Z')} {request_id} "
                f"Task timed out after {spec.timeout_s:.2f} seconds"
            )
            bound.error("function.log", message=message)
            sink(message)
        if not result.ok:
            bound.error(
                "invoke.failed", error_type=result.error_type, error=_error_message(result.payload)
            )
        # One event ends an invocation; the console shows it as CloudWatch's END + REPORT.
        fields = report_fields(result, spec.memory_mb)
        bound.info("invoke.report", **fields)
        sink(f"END RequestId: {request_id}")
        sink(report_line({"request_id": request_id, **fields}))


def import_path(runtime: Runtime, build: Path | None, layers: tuple[Path, ...]) -> tuple[str, ...]:
    """What follows the task root on sys.path: the build (Lambda has it in the task root),
    then each layer's `python/lib/python3.X/site-packages` and `python/`, the last layer
    first (in Lambda a later layer's files overwrite an earlier one's in /opt)."""
    if runtime.custom:
        return ()
    path = [str(build)] if build is not None else []
    for layer in reversed(layers):
        path += [
            str(layer / "python" / "lib" / runtime.name / "site-packages"),
            str(layer / "python"),
        ]
    return tuple(path)


def _log_integrity(exc: SimulatorError, spec: Spec) -> None:
    parts = list(exc.parts) if isinstance(exc, VersionIntegrityError) else []
    path = exc.path if isinstance(exc, VersionIntegrityError) else ""
    log.error(
        "version.integrity_failed",
        function=spec.function,
        version=spec.version,
        parts=parts,
        path=path,
        error=str(exc),
    )


def _failure(error_type: str, message: str, environment_lost: bool = False) -> Result:
    """An invocation that failed before the handler ran."""
    return Result.failed(
        {"errorType": error_type, "errorMessage": message}, environment_lost=environment_lost
    )


def report_fields(result: Result, memory_mb: int) -> dict[str, Any]:
    """REPORT line values: Duration 2 decimals, Billed Duration ceil(ms) (+ init on cold starts)."""
    billed = math.ceil(result.duration_ms + (result.init_ms or 0.0))
    fields: dict[str, Any] = {
        "duration_ms": round(result.duration_ms, 2),
        "billed_ms": max(billed, 1),
        "memory_mb": memory_mb,
        "max_memory_mb": result.max_memory_mb,
        "status": "success" if result.ok else (result.error_type or "error"),
    }
    if result.init_ms is not None:
        fields["init_ms"] = round(result.init_ms, 2)
    return fields


def _with_init(result: Result, init_ms: float) -> Result:
    return dataclasses.replace(result, init_ms=init_ms)


def _error_message(payload: Any) -> str:
    return str(payload.get("errorMessage", "")) if isinstance(payload, dict) else str(payload)


def _output_logger(bound: Any, sink: Callable[[str], None]) -> Callable[[str], None]:
    """One log event per line of output, or per telemetry record (a traceback stays whole)."""

    def emit(text: str) -> None:
        bound.info("function.log", message=text)
        sink(text)

    return emit


def _discard(_: str) -> None:
    pass
