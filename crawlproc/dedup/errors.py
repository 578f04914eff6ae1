"""The one error dedup raises for bad input."""


class DedupError(RuntimeError):
    """Dedup cannot run on this input (unreadable file, missing column): names the file and the reason."""
