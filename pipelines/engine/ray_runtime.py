"""Starting Ray: a private local instance by default, an existing cluster with --address or RAY_ADDRESS.

Ray's own default (`ray.init()` with no address) attaches to whatever cluster its temp dir records, live or left
behind by a killed head; a command here never does that: without an address it starts its own local Ray.

Connecting to a cluster: Ray 2.52+ clusters may require a token (RAY_AUTH_MODE=token). Ray enables token mode
for a client only when it finds a local cluster by itself, never for an explicit address, so a client that has
the token but not the mode is turned away. Here a token in one of the places Ray documents (RAY_AUTH_TOKEN,
RAY_AUTH_TOKEN_PATH, ~/.ray/auth_token) switches the client to token mode, unless RAY_AUTH_MODE says otherwise
(a token-mode client still connects to a cluster without authentication). Any connection failure becomes one
RayConnectError naming the address and what to check.
"""

from __future__ import annotations

import importlib
import logging
import os
import platform
import socket
import sys
from pathlib import Path

from crawlproc.recipe import Recipe

PROBE_SECONDS = 5.0  # a head that does not accept a TCP connection in this time is reported as unreachable


class RayConnectError(RuntimeError):
    """No connection to the Ray cluster at an address; the message says what to check. (This module imports ray
    only when it starts or joins one, so that a CLI can catch this class without paying for `import ray`.)"""


def init_ray(address: str | None = None, recipe: Recipe | None = None, num_cpus: int | None = None) -> None:
    """Connect to `address` (or RAY_ADDRESS) if given, else start a private local Ray sized for this machine.

    Raises RayConnectError when the cluster at the address cannot be joined."""
    import ray

    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    address = address or os.environ.get("RAY_ADDRESS")
    common = dict(include_dashboard=False, log_to_driver=True, logging_level=logging.WARNING)
    if address and address != "local":
        _connect(address, common, plugins=list(recipe.extract.plugins) if recipe is not None else [])
        return
    recipe = recipe or Recipe()
    # Ray turns token auth on for a new instance and warns about it each time: noise for a private one
    logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(logging.ERROR)
    # "local": a new instance even when Ray's temp dir names a running (or dead) cluster
    ray.init(
        address="local",
        num_cpus=num_cpus or os.cpu_count(),
        object_store_memory=recipe.ray.object_store_memory_mb * 1024 * 1024,
        **common,
    )


def init_ray_or_exit(address: str | None = None, recipe: Recipe | None = None, num_cpus: int | None = None,
                     prog: str = "crawlproc") -> None:
    """init_ray for a command: a connection failure prints its message (no traceback) and exits with status 2."""
    try:
        init_ray(address, recipe, num_cpus)
    except RayConnectError as e:
        print(f"{prog}: {e}", file=sys.stderr)
        raise SystemExit(2) from None


def token_source() -> str | None:
    """Where a Ray auth token is, in Ray's order of precedence, or None."""
    if os.environ.get("RAY_AUTH_TOKEN"):
        return "RAY_AUTH_TOKEN"
    if os.environ.get("RAY_AUTH_TOKEN_PATH"):
        return f"RAY_AUTH_TOKEN_PATH={os.environ['RAY_AUTH_TOKEN_PATH']}"
    default = Path.home() / ".ray" / "auth_token"
    return str(default) if default.is_file() else None


def _code_paths(plugins: list[str]) -> list[str]:
    """Our packages' folders, and each recipe plugin's module (a .py file or a package folder)."""
    import crawlproc
    import pipelines
    import tokenizer
    import trainer

    paths = [str(Path(m.__file__).parent) for m in (crawlproc, pipelines, tokenizer, trainer)]
    for name in plugins:
        f = Path(importlib.import_module(name).__file__)
        paths.append(str(f.parent if f.name == "__init__.py" else f))
    return paths


def _connect(address: str, common: dict, plugins: list[str]) -> None:
    import ray

    token = token_source()
    if token and not os.environ.get("RAY_AUTH_MODE"):
        _enable_token_mode()
    unreachable = _probe(address)
    if unreachable:
        raise RayConnectError(_explain(address, unreachable, token))
    # Ship this checkout's code, and the recipe's filter plugins, so cluster workers run the same version as the
    # driver; third-party dependencies must already be installed on the cluster image (pip install crawlproc).
    # Paths, not module objects: the Ray Client (ray:// addresses) has to pickle the runtime_env.
    code = _code_paths(plugins)
    try:
        ray.init(address=address, runtime_env={"py_modules": code}, **common)
    except (ConnectionError, RuntimeError, ValueError, ray.exceptions.AuthenticationError) as e:
        raise RayConnectError(_explain(address, _reason(e), token)) from e


def _enable_token_mode() -> None:
    os.environ["RAY_AUTH_MODE"] = "token"
    # Ray reads RAY_AUTH_MODE into its config when it is imported: refresh it (what ray.init does itself when it
    # turns token mode on). Private API, hence ray<3 in pyproject.toml; tests/test_ray_runtime.py fails if it goes.
    from ray._raylet import Config

    Config.initialize("")


def _probe(address: str) -> str | None:
    """Why nothing could be reached at `address` ("host:port" or "ray://host:port"), or None when a TCP
    connection opens (or the address is not of that form, e.g. "auto": Ray resolves those itself)."""
    hostport = address.removeprefix("ray://")
    host, sep, port = hostport.rpartition(":")
    if not sep or not port.isdigit() or not host:
        return None
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=PROBE_SECONDS):
            return None
    except OSError as e:
        return f"nothing accepts connections there ({e.strerror or e.__class__.__name__})"


def _reason(error: BaseException) -> str:
    """The cause of a failed ray.init, from the whole chain of exceptions Ray raised."""
    import ray

    chain, e = [], error
    while e is not None and len(chain) < 10:
        chain.append(f"{type(e).__name__}: {e}")
        e = e.__cause__ or e.__context__
    text = "\n".join(chain)
    if "InvalidAuthToken" in text or "Unauthenticated" in text:
        if os.environ.get("RAY_AUTH_MODE", "").lower() == "token":
            return "the cluster rejected this client's authentication token"
        return "the cluster requires an authentication token (RAY_AUTH_MODE=token) and this client sent none"
    if isinstance(error, ray.exceptions.AuthenticationError) or "no authentication token was found" in text:
        return "token authentication is on (RAY_AUTH_MODE=token) but no token was found"
    if "Version mismatch" in text:
        return "Ray or Python versions differ: " + " ".join(text[text.index("Version mismatch"):].split())[:300]
    return " ".join(chain[-1].split())[:300]


def _explain(address: str, reason: str, token: str | None) -> str:
    import ray

    mode = os.environ.get("RAY_AUTH_MODE") or "disabled (unset)"
    token_line = f"this client's token comes from {token}" if token else "this client found no token"
    return "\n".join([
        f"cannot connect to the Ray cluster at {address}: {reason}. Check:",
        f"  - address: the head node answers at {address} from this machine (`ray status` on the head prints it)",
        f"  - auth mode: this client uses RAY_AUTH_MODE={mode}; a cluster started with RAY_AUTH_MODE=token "
        "needs token mode on every client (set here automatically when a token is found)",
        f"  - token: {token_line}; it must be the cluster's (`ray get-auth-token` on the head), in RAY_AUTH_TOKEN, "
        "in the file RAY_AUTH_TOKEN_PATH names, or in ~/.ray/auth_token",
        f"  - versions: this client runs Ray {ray.__version__} on Python {platform.python_version()}; "
        "the cluster must run the same",
    ])
