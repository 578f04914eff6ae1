"""Starting Ray: a private local instance by default, an existing cluster with --address or RAY_ADDRESS.

Ray's own default (`ray.init()` with no address) attaches to whatever cluster its temp dir records, live or left
behind by a killed head; a command here never does that: without an address it starts its own local Ray.

Connecting to a cluster: Ray 2.52+ clusters may require a token (RAY_AUTH_MODE=token). Ray enables token mode
for a client only when it finds a local cluster by itself, never for an explicit address, so a client that has
the token but not the mode is turned away. Here a token in one of the places Ray documents (RAY_AUTH_TOKEN,
RAY_AUTH_TOKEN_PATH, ~/.ray/auth_token) switches the client to token mode, unless RAY_AUTH_MODE says otherwise
(a token-mode client still connects to a cluster without authentication). Any connection failure becomes one
RayConnectError naming the address and what to check.

Starting a local Ray: its temp folder (RAY_TMPDIR, else the system's, + /ray) is checked first (writable, room
left, a path short enough for Ray's Unix sockets), and any failure of ray.init becomes one RayStartError naming
the folder and the likely cause, instead of Ray's traceback after its 30 s start-up wait.

Resources: every request the recipe makes of one task or actor (CPUs, GPUs, memory) is checked against the
nodes of the cluster as soon as Ray is up (`check_placeable`): a request no node can serve would otherwise
wait forever ("No available node types can fulfill resource request"); it is a ResourceError naming the key.
"""

from __future__ import annotations

import importlib
import logging
import os
import platform
import socket
import sys
import tempfile
from pathlib import Path

from crawlproc.recipe import Recipe

PROBE_SECONDS = 5.0  # a head that does not accept a TCP connection in this time is reported as unreachable
RAY_TMP_MIN_FREE = 16 << 20  # Ray's session folder (logs, sockets, port files) needs a little room to start
RAY_TMP_MIN_INODES = 1000  # ... and a few hundred files
_SOCKET_ROOM = 107 - len("/session_2000-01-01_00-00-00_000000_0000000/sockets/plasma_store")  # AF_UNIX limit


class RayConnectError(RuntimeError):
    """No connection to the Ray cluster at an address; the message says what to check. (This module imports ray
    only when it starts or joins one, so that a CLI can catch this class without paying for `import ray`.)"""


class RayStartError(RuntimeError):
    """A local Ray that could not start; the message names its temp folder and the likely cause."""


class ResourceError(RuntimeError):
    """A task or actor asks for more than any node of the cluster has; the message names the setting."""


def ray_temp_dir() -> str:
    """Where a local Ray keeps its session (Ray's own rule: $RAY_TMPDIR or the system temp folder, + /ray)."""
    return os.path.join(os.environ.get("RAY_TMPDIR") or tempfile.gettempdir(), "ray")


def _temp_origin() -> str:
    return "RAY_TMPDIR" if os.environ.get("RAY_TMPDIR") else "the system temp folder; set RAY_TMPDIR to move it"


def _check_ray_temp(folder: str) -> None:
    """The temp folder can hold a Ray session: a short path, writable, with room."""
    from crawlproc.store.storage import StorageError, check_write_free

    if len(folder) > _SOCKET_ROOM:
        raise RayStartError(f"cannot start a local Ray: its temp folder {folder} ({_temp_origin()}) is a path of "
                            f"{len(folder)} characters, too long for Ray's Unix sockets (107 bytes with the session "
                            "name): set RAY_TMPDIR to a short path such as /tmp")
    try:
        check_write_free(folder, RAY_TMP_MIN_FREE, "Ray's temp folder", RAY_TMP_MIN_INODES)
    except StorageError as e:
        raise RayStartError(f"cannot start a local Ray: {e} ({_temp_origin()})") from None


def _start_failure(error: BaseException, folder: str) -> str:
    text = " ".join(f"{type(error).__name__}: {error}".split())
    code = getattr(error, "errno", None)
    if "AF_UNIX path length" in text:
        cause = "the temp folder's path is too long for Ray's Unix sockets: set RAY_TMPDIR to a short path such as /tmp"
    elif code is not None:
        from crawlproc.store.storage import describe_os_error

        cause = describe_os_error(error)
    elif "timed out" in text.lower() or "Timed out" in text:
        cause = ("Ray's processes did not come up in time: the machine is overloaded (see `uptime`), or the temp "
                 "folder is full or slow (see `df`); retry when the load drops, or pass --address of a running cluster")
    else:
        cause = "see Ray's logs in the temp folder's session_latest/logs"
    return (f"cannot start a local Ray (temp folder {folder}, {_temp_origin()}): {text[:300]}. Likely cause: {cause}")


def check_placeable(requests: list[tuple[str, dict]]) -> None:
    """Each (setting, {resource: amount}) must fit on one alive node of the cluster, else ResourceError naming
    the setting, what it asks and the largest node. Amounts of 0 or None are not requests."""
    import ray

    nodes = [n.get("Resources") or {} for n in ray.nodes() if n.get("Alive")]
    for key, want in requests:
        want = {r: float(v) for r, v in want.items() if v}
        if not want or any(all(node.get(r, 0.0) >= v for r, v in want.items()) for node in nodes):
            continue
        have = {r: max((node.get(r, 0.0) for node in nodes), default=0.0) for r in want}
        raise ResourceError(
            f"{key} asks each task for {_amounts(want)}, but no node of this cluster has that much (the largest has "
            f"{_amounts(have)}): Ray would wait forever. Lower {key}, or run on a cluster with such nodes "
            "(--address)")


def _amounts(res: dict) -> str:
    out = []
    for r, v in res.items():
        if r == "memory":
            out.append(f"{v / (1 << 30):.3g} GiB memory")
        else:
            out.append(f"{v:g} {r}")
    return ", ".join(out)


def recipe_requests(recipe: Recipe | None) -> list[tuple[str, dict]]:
    """What the recipe asks of one task or actor, by recipe key."""
    if recipe is None:
        return []
    out = [("recipe key ray.num_cpus_per_task", {"CPU": recipe.ray.num_cpus_per_task})]
    for name, c in (recipe.classifiers or {}).items():
        cpus, gpus = getattr(c, "num_cpus", None), getattr(c, "num_gpus", None)
        if cpus or gpus:
            out.append((f"recipe key classifiers.{name}.num_cpus/num_gpus", {"CPU": cpus, "GPU": gpus}))
    return out


def init_ray(address: str | None = None, recipe: Recipe | None = None, num_cpus: int | None = None) -> None:
    """Connect to `address` (or RAY_ADDRESS) if given, else start a private local Ray sized for this machine.

    Raises RayConnectError when the cluster at the address cannot be joined, RayStartError when a local Ray
    cannot start."""
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
    folder = ray_temp_dir()
    _check_ray_temp(folder)
    # "local": a new instance even when Ray's temp dir names a running (or dead) cluster
    try:
        ray.init(
            address="local",
            num_cpus=num_cpus or os.cpu_count(),
            object_store_memory=recipe.ray.object_store_memory_mb * 1024 * 1024,
            **common,
        )
    except Exception as e:  # noqa: BLE001 -- whatever Ray raised, the user gets the folder and the likely cause
        try:
            ray.shutdown()  # the processes that did start
        except Exception:  # noqa: BLE001
            pass
        raise RayStartError(_start_failure(e, folder)) from None


def init_ray_or_exit(address: str | None = None, recipe: Recipe | None = None, num_cpus: int | None = None,
                     prog: str = "crawlproc") -> None:
    """init_ray for a command: a connection failure prints its message (no traceback) and exits with status 2."""
    try:
        init_ray(address, recipe, num_cpus)
        check_placeable(recipe_requests(recipe))
    except (RayConnectError, RayStartError, ResourceError) as e:
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
