"""The S3 API's bucket writes (see `api.py`): CreateBucket, DeleteBucket and the bucket's
notification configuration, kept in config.yaml.

A bucket is a folder under buckets/ and, for its notification rules, an entry under `buckets:`
in config.yaml. Config edits are the minimal text edits of `config_edit` (comments and layout
elsewhere untouched), made under the same lock as the CLI's and checked by the same parser as
a hand edit; the running simulator picks the file up as it picks up a hand edit. Reads of the
configuration come from the file afresh, so a GET right after a PUT sees the PUT.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import structlog
from aiohttp import web

from simulator.core import config_parse, s3_buckets
from simulator.core.config import Config, Notification, published_problems
from simulator.core.s3_api import S3Error
from simulator.errors import ConfigError, Problem, SimulatorError
from simulator.store import config_edit, config_yaml
from simulator.store.versions import VersionStore

log = structlog.get_logger("s3sim")


class Buckets:
    """Used on the server's event loop; file and config work runs in its executor."""

    def __init__(self, buckets_dir: Path, config: Callable[[], Config]) -> None:
        self._dir = buckets_dir
        self._root = buckets_dir.parent
        self._config_path = self._root / "config.yaml"
        self._lock = self._root / ".s3sim" / "config-edit.lock"
        self._uploads = self._root / ".s3sim" / "uploads"
        self._running = config  # the simulator's config in force (when the file is unreadable)
        self._store = VersionStore(self._root / "versions")

    # -- CreateBucket / DeleteBucket -------------------------------------------------------
    async def create(self, request: web.BaseRequest, bucket: str) -> web.Response:
        invalid = s3_buckets.invalid_name(bucket)
        if invalid is not None:
            raise invalid
        region = self._running().region
        problem = s3_buckets.location_problem(
            s3_buckets.location_constraint(await request.read()), region
        )
        if problem is not None:
            raise problem
        folder = self._dir / bucket
        if folder.is_dir() and not folder.is_symlink():
            if region != "us-east-1":
                raise s3_buckets.already_owned(bucket)
            # us-east-1 answers 200 to its owner's repeated CreateBucket (S3's legacy rule)
            return web.Response(headers={"Location": f"/{bucket}"})
        if folder.exists() or folder.is_symlink():
            raise S3Error("InvalidBucketName", 400, "The specified bucket is not valid.", bucket)
        folder.mkdir(parents=True, exist_ok=True)  # a concurrent CreateBucket made it: fine
        await _in_executor(lambda: self._add_entry(bucket))
        log.info("bucket.created", bucket=bucket)
        return web.Response(headers={"Location": f"/{bucket}"})

    async def delete(self, bucket: str, folder: Path) -> web.Response:
        if _holds_objects(folder):
            raise s3_buckets.not_empty(bucket)
        self._abort_uploads(bucket)
        try:
            shutil.rmtree(folder)  # what is left is noise and empty folders
        except OSError as exc:
            message = f"s3sim could not remove the bucket's folder {folder}: {exc}"
            raise S3Error("InternalError", 500, message, bucket) from None
        await _in_executor(lambda: self._remove_entry(bucket))
        log.info("bucket.deleted", bucket=bucket)
        return web.Response(status=204)

    def _add_entry(self, bucket: str) -> None:
        """`buckets.<name>: {}` in config.yaml, so the user finds where its rules go. The
        folder is the bucket: a config.yaml that cannot be edited now (broken by a hand edit
        under way) is reported, not fatal."""

        def change(text: str) -> tuple[str, None]:
            buckets = _mapping(_load(text).get("buckets"))
            if bucket in buckets:
                return text, None
            return config_edit.set_block(text, ["buckets", bucket], {}), None

        self._edit(change, bucket, "bucket.config_not_edited")

    def _remove_entry(self, bucket: str) -> None:
        """S3 deletes a bucket's notification configuration with the bucket: its entry goes."""

        def change(text: str) -> tuple[str, None]:
            return config_edit.remove_in_text(text, ["buckets", bucket]), None

        self._edit(change, bucket, "bucket.config_not_edited")

    def _edit(self, change: Callable[[str], tuple[str, None]], bucket: str, event: str) -> None:
        try:
            config_edit.edit_file(self._config_path, self._lock, change)
        except (SimulatorError, OSError) as exc:
            log.warning(event, bucket=bucket, reason=str(exc))

    def _abort_uploads(self, bucket: str) -> None:
        """Multipart uploads still open in the bucket go with it."""
        if not self._uploads.is_dir():
            return
        for upload in self._uploads.iterdir():
            target = upload / "target"
            try:
                if target.read_text().partition("/")[0] == bucket:
                    shutil.rmtree(upload, ignore_errors=True)
            except OSError:
                continue

    # -- notification configuration --------------------------------------------------------
    def notifications(self, bucket: str) -> tuple[Notification, ...]:
        """The bucket's rules as config.yaml holds them now (the running config's when the
        file cannot be read)."""
        try:
            raw, _ = config_yaml.load(self._config_path.read_text(encoding="utf-8"))
            config, _ = config_parse.build(raw if raw is not None else {})
        except (ConfigError, OSError, UnicodeDecodeError):
            config = self._running()
        found = config.buckets.get(bucket)
        return found.notifications if found else ()

    async def put_notification(self, request: web.BaseRequest, bucket: str) -> web.Response:
        configs = s3_buckets.parse_notification(await request.read())
        await _in_executor(lambda: self._write_notifications(bucket, configs))
        log.info("bucket.notification_configured", bucket=bucket, rules=len(configs))
        return web.Response()

    def _write_notifications(self, bucket: str, configs: list[dict[str, Any]]) -> None:
        def change(text: str) -> tuple[str, None]:
            raw = _load(text)
            self._validate(raw, bucket, configs)
            body = _mapping(_mapping(raw.get("buckets")).get(bucket))
            if "NotificationConfiguration" in body:
                path = ["buckets", bucket, "NotificationConfiguration"]
                return config_edit.set_block(
                    text, [*path, "LambdaFunctionConfigurations"], configs
                ), None
            if "LambdaFunctionConfigurations" in body and "notifications" not in body:
                path = ["buckets", bucket, "LambdaFunctionConfigurations"]
                return config_edit.set_block(text, path, configs), None
            long_form = ["buckets", bucket, "LambdaFunctionConfigurations"]
            text = config_edit.remove_in_text(text, long_form)
            short = [_short(c) for c in configs]
            return config_edit.set_block(text, ["buckets", bucket, "notifications"], short), None

        try:
            config_edit.edit_file(self._config_path, self._lock, change)
        except _Refused as refused:
            raise refused.error from None
        except SimulatorError as exc:
            message = f"s3sim could not edit config.yaml: {exc}"
            raise S3Error("InternalError", 500, message) from None

    def _validate(self, raw: Mapping[str, Any], bucket: str, configs: list[dict[str, Any]]) -> None:
        """The checks of a hand edit, on the file with this bucket's rules replaced; only the
        problems of this bucket's rules refuse the request (others were there before)."""
        buckets = dict(_mapping(raw.get("buckets")))
        buckets[bucket] = {"LambdaFunctionConfigurations": configs}
        config, problems = config_parse.build({**raw, "buckets": buckets})
        problems += published_problems(config, self._store.published(), self._store.last_numbers())
        own = [p for p in problems if _about(p, bucket)]
        if own:
            raise _Refused(s3_buckets.problem_error(own))


class _Refused(SimulatorError):
    """An S3 error raised inside the locked edit (a frozen S3Error cannot pass through the
    lock's context manager, which sets the traceback of what passes)."""

    def __init__(self, error: S3Error) -> None:
        super().__init__(error.message)
        self.error = error


def _about(problem: Problem, bucket: str) -> bool:
    place = f"buckets.{bucket}"
    return problem.path == place or problem.path.startswith((f"{place}.", f"{place}:"))


def _short(config: Mapping[str, Any]) -> dict[str, Any]:
    """A configuration in S3's shape as config.yaml's short form (id, events, prefix, suffix,
    function); rule names are case-insensitive, as S3 reads them."""
    short: dict[str, Any] = {"id": config["Id"]} if config.get("Id") else {}
    short["events"] = list(config["Events"])
    for rule in config.get("Filter", {}).get("Key", {}).get("FilterRules", []):
        if rule["Value"]:
            short[rule["Name"].lower()] = rule["Value"]
    short["function"] = config["LambdaFunctionArn"]
    return short


def _load(text: str) -> dict[str, Any]:
    try:
        raw, _ = config_yaml.load(text)
    except ConfigError as exc:
        message = f"config.yaml cannot be read, so it was not edited: {exc}"
        raise _Refused(S3Error("InternalError", 500, message)) from None
    return dict(raw) if isinstance(raw, Mapping) else {}


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _holds_objects(folder: Path) -> bool:
    """Whether any file a listing would show is left (dotfiles and dot-folders never are)."""
    for _, dirnames, filenames in os.walk(folder):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        if any(not name.startswith(".") for name in filenames):
            return True
    return False


async def _in_executor(work: Callable[[], None]) -> None:
    await asyncio.get_running_loop().run_in_executor(None, work)
