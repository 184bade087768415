"""Reads config.yaml, holds the config in force, swaps it atomically, keeps the last good one."""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from pathlib import Path

import structlog

from simulator.core import config_parse, lambda_env
from simulator.core.config import Alias, Config, published_problems
from simulator.errors import ConfigError, Problem
from simulator.store import config_yaml, files
from simulator.store.versions import VersionStore

log = structlog.get_logger("s3sim")
EMPTY = (
    "the file holds no configuration (it is empty, or only comments); applying it would "
    "remove every function and bucket. To mean exactly that, write {}"
)


def read(
    path: Path,
    store: VersionStore,
    host: Mapping[str, str] = os.environ,
    check_versions: bool = True,
) -> Config:
    """Parse and validate one config file; raises ConfigError naming the place and cause."""
    return load(path, store, host, check_versions)[1]


def load(
    path: Path,
    store: VersionStore,
    host: Mapping[str, str] = os.environ,
    check_versions: bool = True,
) -> tuple[str, Config]:
    """The file's text and the config it holds (the text is what gets kept as last good)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([Problem("", f"no such file: {path}")], str(path.name)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([Problem("", f"cannot read: {exc}")], str(path.name)) from None
    raw, problems = config_yaml.load(text, str(path.name))
    if raw is None and not problems:  # an empty save (a full disk, `: > config.yaml`)
        problems.append(Problem("", EMPTY))
    config, more = config_parse.build(raw if raw is not None else {})
    problems += more
    if check_versions:
        problems += published_problems(config, store.published(), store.last_numbers())
    problems += _reference_problems(config, host)
    if problems:
        raise ConfigError(problems, str(path.name))
    return text, config


def _reference_problems(config: Config, host: Mapping[str, str]) -> list[Problem]:
    return [
        Problem(
            f"functions.{fn.name}.environment.{key}",
            f"refers to ${{{name}}}, which is not set in the simulator's environment",
        )
        for fn in config.functions.values()
        for key, value in fn.environment.items()
        for name in lambda_env.references(value)
        if name not in host
    ]


class ConfigSource:
    """The config in force. Readers take `current` (one attribute read, so always whole)."""

    def __init__(self, path: Path, store: VersionStore, last_good: Path | None = None) -> None:
        self.path, self._store, self._last_good = path, store, last_good
        self._text: str | None = None  # the text of the config in force, once read
        self._rejected = False  # the file was rejected last time: say when it is good again
        self._read_signature = _signature(path)  # of the file as last read
        self.current: Config = self._initial()
        self.published: dict[str, frozenset[int]] = store.published()
        self._lock = threading.Lock()

    def _initial(self) -> Config:
        """The file if valid; else the last good config of an earlier run, if there is one
        (a crash while config.yaml was half written must not stop the next start)."""
        try:
            text, config = self._load(self.path)
        except ConfigError as exc:
            if self._last_good is None or not self._last_good.exists():
                raise
            try:
                kept = self._load(self._last_good)[1]
            except ConfigError as old:
                raise _neither_usable(exc, old, self._last_good) from None
            log.error(
                "config.rejected",
                problems=[f"{exc.source}: {p}" for p in exc.problems],
                kept=f"last good configuration ({self._last_good.name})",
            )
            self._rejected = True
            return kept
        self._remember(text)
        return config

    def remember(self) -> None:
        """Write the last good config again (after the state folder was removed)."""
        if self._text is not None:
            self._remember(self._text)

    def _load(self, path: Path) -> tuple[str, Config]:
        """`load`, with any failure as a ConfigError: whatever goes wrong while reading a
        config (a bug in a check included) must reject that file, not stop the simulator."""
        try:
            return load(path, self._store)
        except ConfigError:
            raise
        except Exception as exc:
            problem = Problem("", f"could not be loaded: {type(exc).__name__}: {exc}")
            raise ConfigError([problem], path.name) from exc

    def _remember(self, text: str) -> None:
        """Keep the text as the last good config; a failed write (disk full) is reported and
        leaves the config in force: it is the running simulator's state, not the file's."""
        self._text = text
        if self._last_good is None:
            return
        try:
            self._last_good.parent.mkdir(parents=True, exist_ok=True)
            files.write_atomic(self._last_good, text)
        except OSError as exc:
            log.warning(
                "config.last_good_not_saved",
                path=str(self._last_good),
                error=exc.strerror or str(exc),
            )

    def catch_up(self) -> None:
        """`reload`, unless the file is the one the last reload read (valid or not): a save
        reported twice (by the watcher and by a client) is applied, or rejected, once."""
        if _signature(self.path) != self._read_signature:
            self.reload()

    def reload(self) -> bool:
        """Apply the file if valid (logs the diff); otherwise log why and keep the last good."""
        with self._lock:
            self._read_signature = _signature(self.path)
            try:
                text, new = self._load(self.path)
            except ConfigError as exc:
                log.error(
                    "config.rejected",
                    problems=[f"{exc.source}: {p}" for p in exc.problems],
                    kept="last good configuration",
                )
                self._rejected = True
                return False
            changes = diff(self.current, new)
            self.published = self._store.published()
            self.current = new
            self._remember(text)
            if changes or self._rejected:
                # After a rejection the last word must not stay `config.rejected`, even when
                # the good file equals the config kept in force (no changes to show).
                log.info(
                    "config.reloaded",
                    changes=changes,
                    **(
                        {"note": "config.yaml is valid again and in force"}
                        if self._rejected
                        else {}
                    ),
                )
            self._rejected = False
            return True

    def refresh_versions(self) -> None:
        self.published = self._store.published()


def _signature(path: Path) -> tuple[int, int, int, int] | None:
    """What changes when the file is saved (an atomic save is a new inode)."""
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def _neither_usable(current: ConfigError, last_good: ConfigError, path: Path) -> ConfigError:
    """Nothing to start with: the file's problems are what the user must fix (the last good
    copy usually fails for the same reason, e.g. a version folder that is gone)."""
    shown = f"{path.parent.name}/{path.name}"
    extra = [p for p in last_good.problems if p not in current.problems]
    note = f"not starting: the last good configuration ({shown}) fails too" + (
        ": " + "; ".join(str(p) for p in extra) if extra else " (the same problem)"
    )
    return ConfigError([*current.problems, Problem("", note)], current.source)


def summary(config: Config) -> dict[str, str]:
    """A flat view of what matters to a user, for diffs: `functions.f.aliases.prod -> "3"`."""
    flat: dict[str, str] = {"region": config.region, "account": config.account}
    for fn in config.functions.values():
        base = f"functions.{fn.name}"
        flat.update(
            {
                f"{base}.handler": fn.handler,
                f"{base}.timeout": str(fn.timeout_s),
                f"{base}.memory": str(fn.memory_mb),
                f"{base}.retries": str(fn.retries),
                f"{base}.max_event_age": str(fn.max_event_age_s),
                f"{base}.reserved_concurrency": str(fn.reserved_concurrency),
                f"{base}.on_failure": str(fn.on_failure),
                f"{base}.on_success": str(fn.on_success),
                f"{base}.recursive_loop": fn.recursive_loop,
            }
        )
        flat.update({f"{base}.environment.{k}": v for k, v in fn.environment.items()})
        flat.update({f"{base}.aliases.{a.name}": alias_text(a) for a in fn.aliases.values()})
        for a in fn.aliases.values():  # an alias's own event-invoke config, where set
            o = a.overrides
            own = {
                "retries": o.retries,
                "max_event_age": o.max_event_age_s,
                "on_failure": o.on_failure,
                "on_success": o.on_success,
            }
            flat.update(
                {f"{base}.aliases.{a.name}.{k}": str(v) for k, v in own.items() if v is not None}
            )
    for bucket in config.buckets.values():
        for n in bucket.notifications:
            flat[f"buckets.{bucket.name}.notifications.{n.id}"] = (
                f"{','.join(n.events)} prefix={n.prefix!r} suffix={n.suffix!r} -> {n.function_arn}"
            )
    for name, value in vars(config.settings).items():
        flat[f"simulator.{name}"] = str(value)
    return flat


def alias_text(alias: Alias) -> str:
    extra = "".join(f" + {v} at {w:g}" for v, w in alias.weights.items())
    return f"{alias.version}{extra}"


def diff(old: Config, new: Config) -> list[str]:
    """Human lines: `functions.thumbnailer.aliases.prod: 3 -> 4`, `+ key: value`, `- key`."""
    a, b = summary(old), summary(new)
    lines = [f"{k}: {a[k]} -> {b[k]}" for k in sorted(a.keys() & b.keys()) if a[k] != b[k]]
    lines += [f"+ {k}: {b[k]}" for k in sorted(b.keys() - a.keys())]
    lines += [f"- {k}" for k in sorted(a.keys() - b.keys())]
    return lines
