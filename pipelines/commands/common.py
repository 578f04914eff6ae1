"""What every command shares: the common options, loading the recipe (a bad one is rejected before any work
starts, naming the key), checking every place it reads and writes before any work (`preflight`), starting
Ray, and the errors that end a command with one clear line and exit code 2: the environment's faults (an
object store or a disk that cannot be used, Ray that cannot start or cannot place a task) and the user's
mistakes that can be fixed."""

from __future__ import annotations

import sys

from crawlproc.recipe import Recipe, RecipeError


def add_recipe_option(p) -> None:
    p.add_argument("--recipe", help="recipe TOML file (a path or URI) or bundled name (default: fineweb)")


def add_ray_option(p) -> None:
    p.add_argument("--address", help="Ray cluster address (default: RAY_ADDRESS, else a private local Ray)")


def add_quiet_option(p) -> None:
    p.add_argument("--quiet", action="store_true", help="no progress line")


def fail(command: str, message: str, code: int = 2) -> int:
    print(f"crawlproc {command}: {message}", file=sys.stderr)
    return code


def load_recipe(args, overrides: dict | None = None) -> Recipe:
    """The recipe the command was given; RecipeError propagates (see `guarded`)."""
    from pipelines.recipes import resolve_recipe

    return resolve_recipe(getattr(args, "recipe", None), overrides)


def start_ray(args, recipe: Recipe) -> None:
    """Arrange for Ray to start (or the cluster to be joined) when the first stage needs it."""
    from pipelines.engine.ray_runtime import check_placeable, init_ray, recipe_requests
    from pipelines.engine.runner import start_ray_on_first_use

    def start() -> None:
        init_ray(getattr(args, "address", None), recipe)
        check_placeable(recipe_requests(recipe))  # a request no node can serve would wait forever

    start_ray_on_first_use(start)


def preflight(storage, reads=(), writes=()) -> None:
    """Before any work: every place the command reads ((what, uri, expect) with expect "file", "dir" or
    "any") and writes ((what, uri)) can be used; the first that cannot raises StorageError naming the cause
    (see crawlproc.store.storage: bounded to seconds, one object-store check per bucket and direction)."""
    seen: set = set()
    for what, uri, expect in reads:
        if uri and (uri, "r") not in seen:
            seen.add((uri, "r"))
            storage.check_read(uri, what, expect)
    for what, uri in writes:
        if uri and (uri, "w") not in seen:
            seen.add((uri, "w"))
            storage.check_write(uri, what)


def guarded(command: str, body) -> int:
    """Run `body()` and turn the errors a user can fix, and the environment's faults, into one line and exit
    code 2 (no traceback)."""
    from crawlproc.store.inputs import RecipeChanged
    from crawlproc.store.layout import LayoutError
    from crawlproc.store.lock import Busy
    from crawlproc.store.storage import StorageError, describe_os_error
    from pipelines.engine.ray_runtime import RayConnectError, RayStartError, ResourceError

    try:
        return int(body() or 0)
    except RecipeError as e:
        return fail(command, f"bad recipe: {e}")
    except (RecipeChanged, Busy, LayoutError, StorageError, RayConnectError, RayStartError, ResourceError) as e:
        return fail(command, str(e))
    except OSError as e:  # a disk or a store failing mid-way (full, read-only, gone): the cause, once
        return fail(command, describe_os_error(e))


def print_failures(summary, command: str) -> None:
    """The failed files with their root cause, and the environment failure that stopped the stage."""
    if summary.stopped:
        cause = summary.stopped.line() if hasattr(summary.stopped, "line") else summary.stopped
        print(f"crawlproc {command}: stopped, every file would fail the same way: {cause}", file=sys.stderr)
        return
    if summary.failed:
        print(f"failed files ({len(summary.failed)}; rerun the same command to retry them):", file=sys.stderr)
        for source, err in summary.failed.items():
            print(f"  {source}: {err}", file=sys.stderr)


def exit_code(summary) -> int:
    """0 when everything went through, 2 when the stage stopped on an environment error, else 1."""
    if summary.stopped:
        return 2
    return 0 if summary.ok else 1
