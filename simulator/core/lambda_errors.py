"""The names of Lambda's errors, in one place (the `errorType` of a payload, the
`Lambda-Runtime-Function-Error-Type` of the Runtime API). Pure.

`lambdas/worker.py` runs inside the execution environment and may import nothing of the
simulator: it spells the runtime's own names (Runtime.ImportModuleError, ...) itself, as the
Python runtime client does.
"""

from __future__ import annotations

# Raised by the platform around the handler.
TIMED_OUT = "Sandbox.Timedout"  # the deadline passed: the environment is reset
EXIT_ERROR = "Runtime.ExitError"  # the runtime process exited or was killed
OUT_OF_MEMORY = "Runtime.OutOfMemory"  # over the function's memory (name not confirmed by AWS)
THROTTLED = "TooManyRequestsException"  # reserved concurrency reached (HTTP 429)
THROTTLED_REASON = "ReservedFunctionConcurrentInvocationLimitExceeded"
# No reserved concurrency: the account's limit, which the simulator's concurrency cap stands for.
ACCOUNT_THROTTLED_REASON = "ConcurrentInvocationLimitExceeded"
# Recursive-loop detection (core/lineage.py): the exception's documented description.
RECURSIVE_INVOCATION = "RecursiveInvocationException"
RECURSIVE_INVOCATION_MESSAGE = (
    "Lambda has detected your function being invoked in a recursive loop with other AWS "
    "resources and stopped your function's invocation."
)
# The simulator's own: a published version's sealed code or settings changed on disk.
VERSION_INTEGRITY = "S3sim.VersionIntegrityError"
