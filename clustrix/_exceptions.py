"""The one exception tree of clustrix.

Every error clustrix raises on its own account derives from :class:`ClustrixError`;
third-party errors (asyncssh, Kubernetes, pydantic, pickling) are translated at the
edge and never cross the public API. The user's *own* exceptions are re-raised as
themselves, with the remote traceback attached.

::

    ClustrixError
    ├── ConfigError (also ValueError)          bad option value or config field
    ├── UsageError (also RuntimeError)         API used in a way that cannot work
    ├── SerializationError                     unpicklable object; payload too large
    ├── AttachError                            cannot reattach to a recorded submission
    │   ├── UnknownKeyError (also LookupError)   no record of that key
    │   └── ClusterMismatchError                 the record names another cluster
    ├── ClusterConnectionError (also ConnectionError)
    │   ├── AuthenticationError
    │   └── HostKeyError
    ├── EnvironmentMismatchError               remote Python differs; env build failed
    ├── SubmissionError                        the scheduler refused the job
    ├── CommandError                           a remote command failed
    ├── ResultIntegrityError                   result digest mismatch or truncation
    ├── RemoteError                            user exception not rebuildable locally
    └── JobError                               ended without a result
        ├── JobFailedError
        ├── JobCancelledError
        ├── JobTimeoutError (also TimeoutError)
        ├── JobOutOfMemoryError
        ├── NodeFailureError
        └── JobLostError
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._states import JobState


class ClustrixError(Exception):
    """Base class of every error clustrix raises on its own account."""


class ConfigError(ClustrixError, ValueError):
    """A configuration field or `@cluster` option has a value that cannot work."""


class UsageError(ClustrixError, RuntimeError):
    """The API was used in a way that cannot work (e.g. a closed `Client`)."""


class AttachError(ClustrixError):
    """`Client.attach` / `clustrix.attach` cannot follow the recorded submission."""


class UnknownKeyError(AttachError, LookupError):
    """No submission or task with this key is recorded on this machine."""


class ClusterMismatchError(AttachError):
    """The record names another cluster than the configuration used to reattach
    (host, port, user, or Kubernetes context and namespace); says which differs."""


class SerializationError(ClustrixError):
    """A function, argument or result cannot be pickled, or the payload is too large."""


class ClusterConnectionError(ClustrixError, ConnectionError):
    """The cluster could not be reached; the message names host, port and user."""

    def __init__(
        self,
        message: str,
        *,
        host: str | None = None,
        port: int | None = None,
        username: str | None = None,
        transient: bool = False,
    ) -> None:
        super().__init__(message)
        self.host = host
        self.port = port
        self.username = username
        self.transient = transient


class AuthenticationError(ClusterConnectionError):
    """The SSH server refused every offered credential."""


class HostKeyError(ClusterConnectionError):
    """The host key is unknown or changed; the message says how to trust it."""


class EnvironmentMismatchError(ClustrixError):
    """The remote Python cannot exchange pickles with this one, or an env build failed."""


class SubmissionError(ClustrixError):
    """The scheduler refused the job; `.stderr` holds its own message."""

    def __init__(self, message: str, *, argv: Sequence[str] = (), stderr: str = "") -> None:
        super().__init__(message)
        self.argv = list(argv)
        self.stderr = stderr


class CommandError(ClustrixError):
    """A command on the cluster exited non-zero."""

    def __init__(
        self,
        message: str,
        *,
        argv: Sequence[str] = (),
        exit_status: int | None = None,
        stdout: str = "",
        stderr: str = "",
        transient: bool = False,
    ) -> None:
        super().__init__(message)
        self.argv = list(argv)
        self.exit_status = exit_status
        self.stdout = stdout
        self.stderr = stderr
        self.transient = transient


class ResultIntegrityError(ClustrixError):
    """A result file failed its digest or length check; it was never unpickled."""


class RemoteError(ClustrixError):
    """The task raised an exception that could not be rebuilt here.

    `.type_name` is the remote exception's qualified type name and `.traceback`
    the remote traceback text.
    """

    def __init__(self, message: str, *, type_name: str = "", traceback: str = "") -> None:
        super().__init__(message)
        self.type_name = type_name
        self.traceback = traceback


class JobError(ClustrixError):
    """A task ended without a result (killed, cancelled, timed out, lost).

    Carries what is known: `job_id`, `state`, `exit_code`, `stderr_tail` and the
    scheduler's `reason`.
    """

    def __init__(
        self,
        message: str,
        *,
        job_id: str | None = None,
        state: JobState | None = None,
        exit_code: int | None = None,
        stderr_tail: str = "",
        reason: str | None = None,
    ) -> None:
        if stderr_tail.strip():
            message = f"{message}\n--- stderr (last lines) ---\n{stderr_tail.rstrip()}"
        super().__init__(message)
        self.job_id = job_id
        self.state = state
        self.exit_code = exit_code
        self.stderr_tail = stderr_tail
        self.reason = reason


class JobFailedError(JobError):
    """Non-zero exit or a signal, with no Python exception to re-raise."""


class JobCancelledError(JobError):
    """The task was cancelled, by `cancel()` or from outside clustrix."""


class JobTimeoutError(JobError, TimeoutError):
    """The task exceeded its walltime."""


class JobOutOfMemoryError(JobError):
    """The task was killed for exceeding its memory limit."""


class NodeFailureError(JobError):
    """The node running the task failed."""


class JobLostError(JobError):
    """The task vanished from the scheduler and left no result."""
