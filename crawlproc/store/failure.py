"""What went wrong with one unit of work, kept with its root cause.

A failure record names the innermost exception of the chain (the one that started it: `raise X from Y`
and "during handling of Y, X" both lead to Y), its message and the innermost frames of its traceback, plus
the messages of the exceptions that wrapped it. It is plain data (JSON), so it survives a trip through Ray,
a `_failed/<stem>.json` marker, `crawlproc status` and the report unchanged.

`kind` says what kind of failure it is:
  error        the unit's own code raised (a bad file, a bug): other units are unaffected
  environment  the machine cannot run this work at all (a missing package or model, no permission to write
               the output, a full disk): every other unit will fail the same way, so a stage stops early --
               at the first such failure when it is the output's disk itself (full, read-only, over quota:
               `output_unusable`), after the first few units otherwise
  worker_died  the process running the unit was killed (out of memory, SIGKILL, a lost node)
  cancelled    the stage stopped the unit itself (after an environment failure): not a failure of the unit
"""

from __future__ import annotations

import errno
import traceback
from dataclasses import asdict, dataclass, field

MAX_FRAMES = 5
MAX_MESSAGE = 2000

# errno values that mean "this machine cannot write here at all", not "this one file is bad"
_ENVIRONMENT_ERRNOS = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT}
# ... and those that say so of the whole disk, whatever the file: no other unit can succeed
DISK_ERRNOS = {errno.EROFS, errno.ENOSPC, errno.EDQUOT}
_DISK_HINTS = {errno.ENOSPC: "the output's disk is full: free space or give another --out, then run the same command",
               errno.EDQUOT: "the disk quota is used up: free space or give another --out, then run the same command",
               errno.EROFS: "the output's file system is read-only: give a writable --out, then run the same command"}


class SetupError(RuntimeError):
    """Raised by our code when the environment cannot do the work (e.g. a model file is missing)."""


class PartialFailure(Exception):
    """A unit that wrote what it could and then failed (a WARC truncated after N records): carries the
    counters of the part that was done, so that they are still counted."""

    def __init__(self, message: str, stats: dict):
        super().__init__(message)
        self.stats = stats


@dataclass
class Failure:
    type: str  # the root cause's exception type, e.g. "ImportError"
    message: str  # its message
    frames: list[str] = field(default_factory=list)  # innermost frames, "file:line in function", last = deepest
    wrapped_by: list[str] = field(default_factory=list)  # "Type: message" of the exceptions around it, outermost first
    kind: str = "error"  # error | environment | worker_died | cancelled
    errno: int | None = None  # the root cause's errno, for an OSError

    @classmethod
    def from_exception(cls, exc: BaseException, kind: str | None = None) -> Failure:
        chain = _chain(exc)
        root = chain[-1]
        frames = [f"{f.filename}:{f.lineno} in {f.name}" for f in traceback.extract_tb(root.__traceback__)]
        code = getattr(root, "errno", None) if isinstance(root, OSError) else None
        return cls(
            type=type(root).__name__,
            message=_clip(str(root)),
            frames=frames[-MAX_FRAMES:],
            wrapped_by=[f"{type(e).__name__}: {_clip(str(e), 300)}" for e in chain[:-1]],
            kind=kind or ("environment" if is_environment_error(root) else "error"),
            errno=code if isinstance(code, int) else None,
        )

    @classmethod
    def from_dict(cls, d: dict) -> Failure:
        known = {k: d[k] for k in ("type", "message", "frames", "wrapped_by", "kind", "errno") if k in d}
        return cls(**{"type": "Error", "message": "", **known})

    @property
    def output_unusable(self) -> bool:
        """The disk said it cannot take any write (full, read-only, over quota): no unit can succeed."""
        return self.kind == "environment" and self.errno in DISK_ERRNOS

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def signature(self) -> tuple[str, str]:
        """What makes two failures "the same failure" (for stopping a stage early): a full or read-only disk is
        the same failure whichever file it was writing."""
        if self.output_unusable:
            return self.type, f"errno {self.errno}"
        return self.type, self.message

    def line(self) -> str:
        """One line for a summary: `Type: message (at file:line in function)`; for a disk that cannot take a
        write, what to do about it instead of where."""
        if self.output_unusable:
            return f"{self.type}: {self.message.splitlines()[0] if self.message else ''}: {_DISK_HINTS[self.errno]}"
        where = f" (at {self.frames[-1]})" if self.frames else ""
        prefix = "worker died: " if self.kind == "worker_died" else ""
        return f"{prefix}{self.type}: {self.message.splitlines()[0] if self.message else ''}{where}"


def _chain(exc: BaseException) -> list[BaseException]:
    """The exception and its causes, outermost first (cycles cut)."""
    out: list[BaseException] = []
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        out.append(cur)
        seen.add(id(cur))
        cur = cur.__cause__ or (None if cur.__suppress_context__ else cur.__context__)
    return out


def _clip(text: str, n: int = MAX_MESSAGE) -> str:
    return text if len(text) <= n else text[:n] + "..."


def is_environment_error(exc: BaseException) -> bool:
    """True when the error says this machine cannot do the work, whatever the input."""
    if isinstance(exc, (ImportError, SetupError, PermissionError)):
        return True
    return isinstance(exc, OSError) and exc.errno in _ENVIRONMENT_ERRNOS
