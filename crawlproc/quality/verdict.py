"""The result every quality filter returns."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Verdict:
    """A filter's decision on one document.

    reason: None keeps the document; otherwise a short stable reason ("dup_line_frac", "gopher_short_doc").
    text:   the text to pass on (C4 drops lines and citations; the other filters pass it unchanged).
    values: the statistics measured before deciding, keyed like the reasons, for `crawlproc explain`.
    """

    reason: str | None
    text: str
    values: dict[str, float] = field(default_factory=dict)

    @property
    def kept(self) -> bool:
        return self.reason is None
