"""Logging in over SSH as OpenSSH would: ~/.ssh/config, agent, keys, host-key checks.

Every asyncssh error is translated here into a clustrix error that names host, port and
user; an unknown or changed host key says how to trust it, and a new key is trusted only
with ``accept_new_host_keys``.
"""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path
from typing import Any

import asyncssh

from .._config import ClusterConfig
from .._exceptions import AuthenticationError, ClusterConnectionError, HostKeyError


def _known_hosts_path(config: ClusterConfig) -> Path:
    return Path(config.known_hosts or "~/.ssh/known_hosts").expanduser()


async def open_connection(config: ClusterConfig) -> asyncssh.SSHClientConnection:
    """Log in as OpenSSH would (``~/.ssh/config``, agent, keys), translating errors."""
    host = config.cluster_host or ""
    options = _connect_options(config)
    label = f"{config.username or '(ssh config/local user)'}@{host}:{config.cluster_port}"
    try:
        try:
            return await asyncssh.connect(host, **options)
        except asyncssh.HostKeyNotVerifiable:
            if not config.accept_new_host_keys or _host_is_known(config):
                raise
            return await _trust_on_first_use(config, options)
    except asyncssh.HostKeyNotVerifiable as error:
        path = _known_hosts_path(config)
        port = config.cluster_port
        entry = host if port == 22 else f"[{host}]:{port}"
        changed = _host_is_known(config)
        raise HostKeyError(
            f"the host key of {host}:{port} "
            + ("CHANGED since it was recorded" if changed else "is not known")
            + f" (known_hosts: {path}): {error}. "
            + (
                f"If the change is expected, remove the old entry with "
                f"`ssh-keygen -R '{entry}' -f {path}` and connect again. "
                if changed
                else f"Check the fingerprint with the cluster's admins, then add it with "
                f"`ssh-keyscan -p {port} {host} >> {path}`, or set accept_new_host_keys=True "
                "to trust a new host on first use. "
            ),
            host=host,
            port=port,
            username=config.username,
        ) from None
    except asyncssh.PermissionDenied as error:
        raise AuthenticationError(
            f"authentication to {label} failed ({error.reason}); check username, key_file, "
            "the ssh-agent, or password",
            host=host,
            port=config.cluster_port,
            username=config.username,
        ) from None
    except TimeoutError as error:
        message = f"connecting to {label} timed out after {config.connect_timeout} s"
        raise _connection_error(config, message, transient=True) from error
    except socket.gaierror as error:
        message = f"cannot resolve the host name of {label}: {error}; check cluster_host"
        raise _connection_error(config, message) from None
    except ConnectionRefusedError:
        message = (
            f"{host}:{config.cluster_port} refused the connection ({label}); is sshd "
            "running there, and is cluster_port right?"
        )
        raise _connection_error(config, message, transient=True) from None
    except (OSError, asyncssh.Error, asyncssh.KeyImportError) as error:
        if _names_key_file(config, error):
            raise _key_file_error(config, label, error) from None
        message = f"cannot connect to {label}: {error}"
        raise _connection_error(config, message, transient=True) from error


def _connection_error(
    config: ClusterConfig, message: str, *, transient: bool = False
) -> ClusterConnectionError:
    return ClusterConnectionError(
        message,
        host=config.cluster_host or "",
        port=config.cluster_port,
        username=config.username,
        transient=transient,
    )


def _key_file_error(config: ClusterConfig, label: str, error: Exception) -> AuthenticationError:
    problem = (
        f"is not a private key asyncssh can read ({error})"
        if isinstance(error, asyncssh.KeyImportError)
        else f"cannot be read: {getattr(error, 'strerror', None) or error}"
    )
    return AuthenticationError(
        f"cannot log in to {label}: key_file={config.key_file!r} {problem}; set key_file "
        "to your private key's path, or leave it unset to use ~/.ssh/config, the default "
        "keys and the ssh-agent",
        host=config.cluster_host or "",
        port=config.cluster_port,
        username=config.username,
    )


def _names_key_file(config: ClusterConfig, error: Exception) -> bool:
    """True if `error` came from reading the configured `key_file`."""
    if not config.key_file:
        return False
    if isinstance(error, asyncssh.KeyImportError):
        return True  # only client_keys are imported from files here
    filename = getattr(error, "filename", None)
    return filename is not None and str(filename) == os.path.expanduser(config.key_file)


def _connect_options(config: ClusterConfig) -> dict[str, Any]:
    options: dict[str, Any] = {
        "connect_timeout": config.connect_timeout,
        "keepalive_interval": 15,
        "keepalive_count_max": 4,
    }
    explicit = config.model_fields_set
    # Only what the user set: the rest comes from ~/.ssh/config as OpenSSH would take it.
    if "cluster_port" in explicit or config.cluster_port != 22:
        options["port"] = config.cluster_port
    if config.username:
        options["username"] = config.username
    if config.key_file:
        options["client_keys"] = [os.path.expanduser(config.key_file)]
    if config.password is not None:
        options["password"] = config.password.get_secret_value()
    if config.known_hosts:
        options["known_hosts"] = str(_known_hosts_path(config))
    if config.proxy_jump:
        options["tunnel"] = config.proxy_jump
    return options


def _host_is_known(config: ClusterConfig) -> bool:
    path = _known_hosts_path(config)
    if not path.is_file():
        return False
    try:
        known = asyncssh.read_known_hosts(str(path))
        host = config.cluster_host or ""
        keys = known.match(host, "", config.cluster_port)
    except (OSError, ValueError, asyncssh.Error):
        return False
    return any(bool(group) for group in keys[:2])


async def _trust_on_first_use(
    config: ClusterConfig, options: dict[str, Any]
) -> asyncssh.SSHClientConnection:
    connection = await asyncssh.connect(
        config.cluster_host or "", **{**options, "known_hosts": None}
    )
    key = connection.get_server_host_key()
    if key is not None:
        host, port = config.cluster_host or "", config.cluster_port
        entry = host if port == 22 else f"[{host}]:{port}"
        line = f"{entry} {key.export_public_key('openssh').decode().strip()}\n"
        await asyncio.to_thread(_append_known_host, _known_hosts_path(config), line)
    return connection


def _append_known_host(path: Path, line: str) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(line)
    os.chmod(path, 0o600)
