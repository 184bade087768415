"""One exception tree for the whole package. Every error carries the data that explains it.

    SimulatorError                  raised on purpose; the CLI turns it into a message
    ├── ConfigError                 config.yaml is invalid: every Problem (path + message)
    ├── ArnError                    an ARN that cannot be parsed
    ├── LambdaApiError              what Lambda's API would answer (`code`, AWS's message)
    │   ├── ResourceNotFound        ResourceNotFoundException
    │   ├── ResourceConflict        ResourceConflictException
    │   ├── InvalidParameterValue   InvalidParameterValueException
    │   ├── ValidationFailed        ValidationException
    │   ├── PreconditionFailed      PreconditionFailedException (a stale RevisionId)
    │   └── RequestTooLarge         RequestEntityTooLargeException
    ├── HookStatusError             what CodeDeploy's PutLifecycleEventHookExecutionStatus answers
    ├── VersionIntegrityError       a published version's sealed code or settings changed
    ├── RuntimeUnavailable          a function's runtime cannot run here (not installed, ...)
    └── WorkspaceLocked             another simulator runs on the workspace

Foreign code (handlers, watchdog callbacks) is caught broadly only where it runs, and turned
into a result or a log event.
"""

from __future__ import annotations

from dataclasses import dataclass


class SimulatorError(Exception):
    """Root of every error the simulator raises on purpose."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong in a configuration: where (a dotted path in the file) and what."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class HookStatusError(SimulatorError):
    """A PutLifecycleEventHookExecutionStatus that CodeDeploy refuses: its exception name
    (`code`) and message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


class RuntimeUnavailable(SimulatorError):
    """A function's runtime cannot be started here: its interpreter is missing, or its
    packages cannot be installed. The invocation fails with `Runtime.Unavailable`."""


class ConfigError(SimulatorError):
    """config.yaml (or a value derived from it) is invalid; carries every problem found."""

    def __init__(self, problems: list[Problem], source: str = "config.yaml") -> None:
        self.problems = tuple(problems)
        self.source = source
        super().__init__("\n".join(f"{source}: {p}" for p in problems))


class NotFound(SimulatorError):
    """A bucket or dead letter named on the command line that does not exist."""


class UsageError(SimulatorError):
    """A command line that cannot be carried out as given (a value in the wrong form)."""


class ArnError(SimulatorError):
    """An ARN that cannot be parsed (S3's message: "The ARN could not be parsed")."""

    def __init__(self, arn: str, reason: str = "The ARN could not be parsed") -> None:
        self.arn = arn
        self.reason = reason
        super().__init__(f"{reason}: {arn!r}")


class LambdaApiError(SimulatorError):
    """An error Lambda's API would return; `code` is AWS's exception name, message AWS's text."""

    code = "ServiceException"

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)


class ResourceNotFound(LambdaApiError):
    code = "ResourceNotFoundException"


class ResourceConflict(LambdaApiError):
    code = "ResourceConflictException"


class InvalidParameterValue(LambdaApiError):
    code = "InvalidParameterValueException"


class ValidationFailed(LambdaApiError):
    code = "ValidationException"


class RecursiveInvocation(LambdaApiError):
    code = "RecursiveInvocationException"  # HTTP 400, as botocore's model has it


class PreconditionFailed(LambdaApiError):
    code = "PreconditionFailedException"


class RequestTooLarge(LambdaApiError):
    code = "RequestEntityTooLargeException"


@dataclass(frozen=True)
class Alteration:
    """One part of a published version that no longer matches its seal."""

    part: str  # "code" or "settings"
    path: str  # the file that changed
    expected: str  # the digest sealed at publish (or first sight)
    actual: str  # the digest of what is on disk now

    def __str__(self) -> str:
        name = "CodeSha256" if self.part == "code" else "SettingsSha256"
        return (
            f"its {self.part} changed ({self.path}): {name} is {self.actual}, "
            f"sealed as {self.expected}"
        )


class VersionIntegrityError(SimulatorError):
    """A published version's code or settings no longer match what was sealed when it was
    published (or first seen); it is refused, never run."""

    def __init__(self, function: str, version: str, alterations: list[Alteration]) -> None:
        self.function, self.version = function, version
        self.alterations = tuple(alterations)
        self.parts = tuple(sorted({a.part for a in alterations}))
        first = alterations[0]
        self.path, self.expected, self.actual = first.path, first.expected, first.actual
        super().__init__(
            f"published version {function}:{version} was altered on disk: "
            + "; ".join(map(str, alterations))
            + "; restore the files or publish again"
        )


class WorkspaceLocked(SimulatorError):
    """Another simulator already runs on this workspace."""

    def __init__(self, workspace: str, holder: str) -> None:
        self.workspace, self.holder = workspace, holder
        super().__init__(
            f"another s3sim is already running on {workspace} ({holder}); stop it first"
        )
