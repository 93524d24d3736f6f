"""The Flyte 2 SDK's runtime error classes (``flyte.errors``), with the SDK's names and signatures.

Flyte code catches these (``except flyte.errors.RuntimeUserError as e: e.code``) and raises some
(``NonRecoverableError`` to stop retries, ``CustomError`` for a code of its own). They are
re-exported by :mod:`flyte_nb.errors`, which maps every task failure onto them without losing
the failure's own type. Unlike the SDK's, these pickle (they cross process boundaries here).
"""

from __future__ import annotations

from typing import Any, Literal

ErrorKind = Literal["system", "unknown", "user"]


def _rebuild(cls: type, args: tuple, state: dict[str, Any]) -> BaseException:
    error = cls.__new__(cls)
    error.args = args
    error.__dict__.update(state)
    return error


class BaseRuntimeError(RuntimeError):
    """A task failed; ``code`` names the failure (``"ValueError"``), ``kind`` whose fault it was."""

    code: str = "Unknown"
    kind: ErrorKind = "unknown"
    worker: str | None = None

    def __init__(self, code: str, kind: ErrorKind, root_cause_message: str, worker: str | None = None) -> None:
        super().__init__(root_cause_message)
        self.code = code
        self.kind = kind
        self.worker = worker

    def __reduce__(self) -> tuple[Any, ...]:
        """Rebuilt without calling ``__init__``: subclasses' signatures differ, their state does not."""
        return (_rebuild, (type(self), self.args, dict(self.__dict__)))

    def _reraise(self, *_: Any) -> Any:
        """A failure returned by ``map(return_exceptions=True)`` and summed raises itself, not a TypeError."""
        raise self

    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = _reraise
    __truediv__ = __rtruediv__ = __floordiv__ = __rfloordiv__ = _reraise


class InitializationError(BaseRuntimeError):
    """Flyte was used before ``flyte.init``."""


class RuntimeSystemError(BaseRuntimeError):
    """The platform failed (here: a worker or container died), not the user's code."""

    kind = "system"

    def __init__(self, code: str, message: str, worker: str | None = None) -> None:
        super().__init__(code, "system", message, worker)


class UnionRpcError(RuntimeSystemError):
    """Talking to the control plane failed."""


class RuntimeUserError(BaseRuntimeError):
    """The user's code failed; ``code`` is the exception's class name, e.g. ``"ValueError"``."""

    kind = "user"

    def __init__(self, code: str, message: str, worker: str | None = None) -> None:
        super().__init__(code, "user", message, worker)


class RuntimeUnknownError(BaseRuntimeError):
    """A failure whose cause is unknown."""

    def __init__(self, code: str, message: str, worker: str | None = None) -> None:
        super().__init__(code, "unknown", message, worker)


class OOMError(RuntimeUserError):
    """The task ran out of memory and was killed."""


class TaskInterruptedError(RuntimeUserError):
    """The task was interrupted (a spot instance reclaimed, say)."""


class PrimaryContainerNotFoundError(RuntimeUserError):
    """The task's primary container was not found."""


class RetriesExhaustedError(RuntimeUserError):
    """Every retry failed."""


class InvalidImageNameError(RuntimeUserError):
    """The image name is invalid."""


class ImagePullBackOffError(RuntimeUserError):
    """The image could not be pulled."""


class NotInTaskContextError(RuntimeUserError):
    """Task context was asked for outside a task."""


class ActionNotFoundError(RuntimeError):
    """No such action."""


class _Coded(RuntimeUserError):
    """A user error whose code is fixed by its class and whose only argument is the message."""

    CODE = "RuntimeUserError"

    def __init__(self, message: str) -> None:
        super().__init__(self.CODE, message)


class TaskTimeoutError(RuntimeUserError):
    """The task exceeded one of its ``flyte.Timeout`` bounds (the subclasses say which)."""

    def __init__(self, message: str, code: str = "TaskTimeoutError") -> None:
        super().__init__(code, message)


class MaxQueuedTimeExceededError(TaskTimeoutError):
    """The task waited longer than ``Timeout.max_queued_time`` before it started."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code="MaxQueuedTimeExceededError")


class MaxRuntimeExceededError(TaskTimeoutError):
    """An attempt ran longer than ``Timeout.max_runtime``."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code="MaxRuntimeExceededError")


class DeadlineExceededError(TaskTimeoutError):
    """The task did not finish within ``Timeout.deadline``, counting every attempt."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code="DeadlineExceededError")


class NonRecoverableError(RuntimeUserError):
    """Raise it to fail at once: no retry is made, whatever attempts remain."""

    def __init__(self, message: str, code: str = "NonRecoverableError") -> None:
        super().__init__(code, message)


class CustomError(RuntimeUserError):
    """A user error with a code of the user's choosing."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(code, message)

    @classmethod
    def from_exception(cls, e: Exception) -> CustomError:
        """The exception's class name as code, its message as message, the exception as cause."""
        error = cls(type(e).__name__, str(e))
        error.__cause__ = e
        return error


class RuntimeDataValidationError(RuntimeUserError):
    """An input or output could not be (de)serialised."""

    def __init__(self, var: str, e: Exception | str, task_name: str = "") -> None:
        super().__init__("DataValidationError",
                         f"In task {task_name} variable {var}, failed to serialize/deserialize because of {e}")


class InvalidPackageError(RuntimeUserError):
    """An image names a system package that does not exist."""

    def __init__(self, package_name: str, original_error: str) -> None:
        self.package_name = package_name
        self.original_error = original_error
        super().__init__("InvalidPackageError", f"Invalid system package detected: '{package_name}'. "
                                                f"Error: {original_error}")


class LogsNotYetAvailableError(BaseRuntimeError):
    """The task's logs are not available yet."""

    def __init__(self, message: str) -> None:
        super().__init__("LogsNotYetAvailable", "system", message, None)


class ActionAbortedError(_Coded):
    """The action was aborted from outside; its parent sees this."""

    CODE = "ActionAbortedError"


class ConditionTimedoutError(_Coded):
    """A condition was not signalled in time."""

    CODE = "ConditionTimedoutError"


class RemoteTaskNotFoundError(_Coded):
    """No such remote task."""

    CODE = "RemoteTaskNotFoundError"


class RemoteTaskUsageError(_Coded):
    """A remote task was used wrongly."""

    CODE = "RemoteTaskUsageError"


class DeploymentError(_Coded):
    """Deployment failed or its preconditions are not met."""

    CODE = "DeploymentError"


class ImageBuildError(_Coded):
    """An image failed to build."""

    CODE = "ImageBuildError"


class ModuleLoadError(_Coded):
    """A module could not be loaded."""

    CODE = "ModuleLoadError"


class InlineIOMaxBytesBreached(_Coded):
    """Inputs or outputs exceed ``max_inline_io_bytes``."""

    CODE = "InlineIOMaxBytesBreached"


class SlowDownError(_Coded):
    """Too many requests: slow down."""

    CODE = "SlowDownError"


class ResourceExhaustedError(SlowDownError):
    """A quota is exhausted."""


class OnlyAsyncIOSupportedError(_Coded):
    """Sync IO was used where only async IO works."""

    CODE = "OnlyAsyncIOSupportedError"


class ParameterMaterializationError(_Coded):
    """An app parameter could not be materialised."""

    CODE = "ParameterMaterializationError"


class RestrictedTypeError(_Coded):
    """A type that Flyte does not allow here."""

    CODE = "RestrictedTypeUsage"


class CodeBundleError(_Coded):
    """The code bundle could not be made."""

    CODE = "CodeBundleError"


class SyncTaskCallInAsyncContextError(_Coded):
    """A blocking sync-task call from async code (flyte_nb allows it; the SDK raises this)."""

    CODE = "SyncTaskCallInAsyncContextError"


class TraceDoesNotAllowNestedTasksError(_Coded):
    """A task was called inside a ``flyte.trace`` function."""

    CODE = "TraceDoesNotAllowNestedTasksError"


class ConditionAlreadyExistsError(_Coded):
    """A condition of that name exists in this action."""

    CODE = "ConditionAlreadyExistsError"


class ConditionFailedError(_Coded):
    """A condition failed."""

    CODE = "ConditionFailedError"


class ConditionNotFoundError(_Coded):
    """No such condition."""

    CODE = "ConditionNotFoundError"


GPU_FAULT_CODES: tuple[str, ...] = ("GpuXidError", "GpuFallenOffBus", "GpuEccUncorrectable", "GpuRowRemapPending",
                                    "GpuNvlinkError", "GpuGspError")
"""Codes of failures that the platform puts down to a GPU fault (never raised locally)."""

_FAULT_FIELDS = ("fault_kind", "fault_code", "fault_name", "severity", "gpu_uuid", "gpu_index", "node",
                 "pci_bus_id", "process")


class GPUFaultError(BaseRuntimeError):
    """A GPU or NVSwitch fault (platform-only; accepted so that handlers for it import)."""

    def __init__(self, code: str, kind: ErrorKind, message: str, worker: str | None = None, **fault: Any) -> None:
        unknown = set(fault) - set(_FAULT_FIELDS)
        if unknown:
            raise TypeError(f"GPUFaultError got unexpected fields: {', '.join(sorted(unknown))}")
        BaseRuntimeError.__init__(self, code, kind, message, worker)
        for name in _FAULT_FIELDS:
            setattr(self, name, fault.get(name))

    @property
    def xid(self) -> int | None:
        return self.fault_code if self.fault_kind == "xid" else None  # type: ignore[attr-defined]

    @property
    def sxid(self) -> int | None:
        return self.fault_code if self.fault_kind == "sxid" else None  # type: ignore[attr-defined]


class GPUFaultUserError(GPUFaultError, RuntimeUserError):
    """A GPU fault the workload caused."""

    def __init__(self, code: str, message: str, worker: str | None = None, **fault: Any) -> None:
        GPUFaultError.__init__(self, code, "user", message, worker, **fault)


class GPUFaultSystemError(GPUFaultError, RuntimeSystemError):
    """A GPU hardware fault."""

    def __init__(self, code: str, message: str, worker: str | None = None, **fault: Any) -> None:
        GPUFaultError.__init__(self, code, "system", message, worker, **fault)


class AppleSiliconError(RuntimeUserError):
    """The Apple Silicon accelerator of a devbox failed (never raised locally)."""

    code_name = "APPLE_SILICON_ERROR"
    recoverable = True

    def __init__(self, message: str, worker: str | None = None) -> None:
        super().__init__(self.code_name, message, worker)


class AppleSiliconNotAvailableError(AppleSiliconError):
    code_name, recoverable = "APPLE_SILICON_NOT_AVAILABLE", False


class AppleSiliconHostExecFailedError(AppleSiliconError):
    code_name, recoverable = "APPLE_SILICON_HOST_EXEC_FAILED", False


class AppleSiliconDaemonStartFailedError(AppleSiliconError):
    code_name, recoverable = "APPLE_SILICON_DAEMON_START_FAILED", False


class AppleSiliconDaemonOOMError(AppleSiliconError):
    code_name = "APPLE_SILICON_DAEMON_OOM"


class AppleSiliconModelNotFoundError(AppleSiliconError):
    code_name, recoverable = "APPLE_SILICON_MODEL_NOT_FOUND", False


class AppleSiliconBridgeUnreachableError(AppleSiliconError):
    code_name = "APPLE_SILICON_BRIDGE_UNREACHABLE"


APPLE_SILICON_ERRORS_BY_CODE: dict[str, type[AppleSiliconError]] = {
    cls.code_name: cls for cls in AppleSiliconError.__subclasses__()
}


def silence_polling_error(loop: Any, context: dict[str, Any]) -> None:
    """An asyncio exception handler that drops ``BlockingIOError`` noise and passes the rest on."""
    if not isinstance(context.get("exception"), BlockingIOError):
        loop.default_exception_handler(context)


NAMES = tuple(name for name in globals() if not name.startswith("_") and name not in ("annotations", "Any", "Literal"))
"""The public names of this module (re-exported by :mod:`flyte_nb.errors`)."""

for _name in NAMES:  # one home for pickling and tracebacks: flyte_nb.errors.X
    _value = globals()[_name]
    if isinstance(_value, type):
        _value.__module__ = "flyte_nb.errors"


__all__ = list(NAMES)
