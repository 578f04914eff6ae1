"""What every command shares: the common options, loading the recipe (a bad one is rejected before any work
starts, naming the key), starting Ray, and the few errors that end a command with one clear line."""

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
    from pipelines.engine.ray_runtime import init_ray
    from pipelines.engine.runner import start_ray_on_first_use

    start_ray_on_first_use(lambda: init_ray(getattr(args, "address", None), recipe))


def guarded(command: str, body) -> int:
    """Run `body()` and turn the errors a user can fix into one line and exit code 2."""
    from crawlproc.store.inputs import RecipeChanged
    from crawlproc.store.layout import LayoutError
    from crawlproc.store.lock import Busy
    from crawlproc.store.storage import StorageError

    try:
        return int(body() or 0)
    except RecipeError as e:
        return fail(command, f"bad recipe: {e}")
    except (RecipeChanged, Busy, LayoutError, StorageError) as e:
        return fail(command, str(e))


def print_failures(summary, command: str) -> None:
    """The failed files with their root cause, and the environment failure that stopped the stage."""
    if summary.stopped:
        print(f"crawlproc {command}: stopped: the first files all failed with the same environment error:\n"
              f"  {summary.stopped}\nFix the environment and run the same command again.", file=sys.stderr)
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
