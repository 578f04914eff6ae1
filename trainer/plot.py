"""loss.png from metrics.jsonl, with no plotting library: a small raster, drawn and PNG-encoded here.

Train loss is blue, validation loss orange (with dots); the y axis is labelled with its min and max loss,
the x axis with its first and last step, in a 3x5 pixel font.
"""

from __future__ import annotations

import itertools
import struct
import zlib

W, H, LEFT, RIGHT, TOP, BOTTOM = 640, 400, 60, 20, 20, 40
WHITE, AXIS, GRID = (255, 255, 255), (90, 90, 90), (225, 225, 225)
BLUE, ORANGE = (31, 119, 180), (255, 127, 14)

# 3x5 glyphs, rows top to bottom, 3 bits per row
FONT = {
    "0": (7, 5, 5, 5, 7), "1": (2, 6, 2, 2, 7), "2": (7, 1, 7, 4, 7), "3": (7, 1, 7, 1, 7),
    "4": (5, 5, 7, 1, 1), "5": (7, 4, 7, 1, 7), "6": (7, 4, 7, 5, 7), "7": (7, 1, 1, 1, 1),
    "8": (7, 5, 7, 5, 7), "9": (7, 5, 7, 1, 7), ".": (0, 0, 0, 0, 2), "-": (0, 0, 7, 0, 0),
    "e": (0, 7, 7, 4, 7),
}


class Canvas:
    def __init__(self, w: int, h: int):
        self.w, self.h = w, h
        self.px = bytearray(WHITE * (w * h))

    def set(self, x: int, y: int, c: tuple[int, int, int]) -> None:
        if 0 <= x < self.w and 0 <= y < self.h:
            i = 3 * (y * self.w + x)
            self.px[i : i + 3] = bytes(c)

    def line(self, x0: int, y0: int, x1: int, y1: int, c, width: int = 1) -> None:
        dx, dy = abs(x1 - x0), -abs(y1 - y0)
        sx, sy = (1 if x0 < x1 else -1), (1 if y0 < y1 else -1)
        err = dx + dy
        while True:  # Bresenham
            for o in range(width):
                self.set(x0, y0 + o, c)
            if (x0, y0) == (x1, y1):
                return
            e2 = 2 * err
            if e2 >= dy:
                err, x0 = err + dy, x0 + sx
            if e2 <= dx:
                err, y0 = err + dx, y0 + sy

    def text(self, x: int, y: int, s: str, c=AXIS, scale: int = 2) -> None:
        for ch in s:
            for r, bits in enumerate(FONT.get(ch, (0,) * 5)):
                for col in range(3):
                    if bits >> (2 - col) & 1:
                        for a in range(scale):
                            for b in range(scale):
                                self.set(x + col * scale + a, y + r * scale + b, c)
            x += 4 * scale

    def png(self) -> bytes:
        def chunk(kind: bytes, data: bytes) -> bytes:
            return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

        stride = 3 * self.w
        raw = b"".join(b"\x00" + bytes(self.px[y * stride : (y + 1) * stride]) for y in range(self.h))
        header = struct.pack(">IIBBBBB", self.w, self.h, 8, 2, 0, 0, 0)  # 8-bit RGB
        return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(
            b"IEND", b""
        )


def read_curves(records: list[dict]) -> tuple[list[tuple[int, float]], list[tuple[int, float]]]:
    train, val = [], []
    for rec in records:
        if rec.get("train_loss") is not None:
            train.append((rec["step"], rec["train_loss"]))
        if rec.get("val_loss") is not None:
            val.append((rec["step"], rec["val_loss"]))
    return train, val


def loss_png(records: list[dict]) -> bytes | None:
    """The PNG of the curves in metrics records (metrics.jsonl's lines); None when there is nothing to plot."""
    train, val = read_curves(records)
    points = train + val
    if not points:
        return None
    s0, s1 = min(p[0] for p in points), max(p[0] for p in points)
    l0, l1 = min(p[1] for p in points), max(p[1] for p in points)
    s1, l1 = (s1 if s1 > s0 else s0 + 1), (l1 if l1 > l0 else l0 + 1e-6)
    pw, ph = W - LEFT - RIGHT, H - TOP - BOTTOM

    def xy(step: float, loss: float) -> tuple[int, int]:
        return LEFT + round((step - s0) / (s1 - s0) * pw), TOP + round((l1 - loss) / (l1 - l0) * ph)

    c = Canvas(W, H)
    for i in range(5):  # horizontal grid
        y = TOP + round(i * ph / 4)
        c.line(LEFT, y, LEFT + pw, y, GRID)
    c.line(LEFT, TOP, LEFT, TOP + ph, AXIS)
    c.line(LEFT, TOP + ph, LEFT + pw, TOP + ph, AXIS)
    c.text(4, TOP - 4, f"{l1:.3g}")
    c.text(4, TOP + ph - 6, f"{l0:.3g}")
    c.text(LEFT, TOP + ph + 10, str(s0))
    c.text(LEFT + pw - 8 * len(str(s1)), TOP + ph + 10, str(s1))
    for curve, color in ((train, BLUE), (val, ORANGE)):
        pts = [xy(s, v) for s, v in curve]
        for a, b in itertools.pairwise(pts):
            c.line(*a, *b, color, width=2)
        if color == ORANGE:
            for x, y in pts:
                for dx in range(-2, 3):
                    c.line(x + dx, y - 2, x + dx, y + 2, color)
    return c.png()
