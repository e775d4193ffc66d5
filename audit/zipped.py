"""A zip archive of deflated parts, written here rather than by `zipfile`, so that the deflate is
ISA-L's (python-isal) where it is installed, and so is the CRC-32 (three times zlib's: 0.08 s of
the spinal benchmark's workbook).

findings.xlsx is a zip of XML parts (audit.workbook), and deflating its sheets was half of the
workbook's time: 136 MB of sheet XML for the 200,000-episode spinal benchmark took 0.65 s with
zlib at level 1, 0.16 s with ISA-L at its level 1, for a smaller file. `zipfile` always deflates
with zlib. The format is PKWARE's APPNOTE: for each part a local header, then its deflated bytes;
then the central directory and its end record. No zip64: a part past 4 GiB is refused (a sheet
stops at audit.workbook.SHEET_ROWS rows, far below it).
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterable
from typing import BinaryIO

try:  # python-isal, a dependency; zlib where it could not be installed (the same stream format)
    from isal import isal_zlib as _deflate
    LEVEL = 1  # ISA-L's levels are 0-3
except ImportError:  # pragma: no cover - isal ships wheels for the platforms we run on
    _deflate, LEVEL = zlib, 1

_LOCAL = struct.Struct("<IHHHHHIIIHH")  # APPNOTE 4.3.7
_CENTRAL = struct.Struct("<IHHHHHHIIIHHHHHII")  # 4.3.12
_END = struct.Struct("<IHHHHIIH")  # 4.3.16
_VERSION = 20  # 2.0: deflate
_MADE_BY = (3 << 8) | _VERSION  # on Unix; with read-write for the owner, as zipfile writes parts
_OWNER_RW = 0o600 << 16
_DEFLATED = 8
_LIMIT = 0xFFFFFFFF


def dos_time(when: tuple[int, int, int, int, int, int]) -> tuple[int, int]:
    """(time, date) as zip headers hold them: two-second steps, years 1980 to 2107 (a time
    outside them is held as the nearest they can)."""
    if when[0] < 1980:
        when = (1980, 1, 1, 0, 0, 0)
    elif when[0] > 2107:
        when = (2107, 12, 31, 23, 59, 58)
    year, month, day, hour, minute, second = when
    return (hour << 11) | (minute << 5) | (second // 2), ((year - 1980) << 9) | (month << 5) | day


class ZipWriter:
    """Parts added in order to a seekable binary file; `close` writes the central directory.
    Each part's header is written first and completed once its data is (sizes and CRC-32)."""

    def __init__(self, handle: BinaryIO, when: tuple[int, int, int, int, int, int]):
        self.handle, self.entries = handle, []
        self.time, self.date = dos_time(when)

    def add(self, name: str, chunks: Iterable[bytes]) -> None:
        encoded = name.encode("ascii")  # part names are ours, all ASCII (no UTF-8 flag needed)
        offset = self.handle.tell()
        self.handle.write(_LOCAL.pack(0x04034B50, _VERSION, 0, _DEFLATED, self.time, self.date, 0, 0, 0,
                                      len(encoded), 0) + encoded)
        compressor = _deflate.compressobj(LEVEL, _deflate.DEFLATED, -15)  # raw deflate, as zip holds it
        crc = size = written = 0
        for chunk in chunks:
            crc, size = _deflate.crc32(chunk, crc), size + len(chunk)
            data = compressor.compress(chunk)
            written += len(data)
            self.handle.write(data)
        data = compressor.flush()
        written += len(data)
        self.handle.write(data)
        if size > _LIMIT or written > _LIMIT:
            raise ValueError(f"{name}: over 4 GiB, more than a zip without zip64 holds")
        end = self.handle.tell()
        self.handle.seek(offset + 14)  # the local header's CRC-32 and sizes
        self.handle.write(struct.pack("<III", crc, written, size))
        self.handle.seek(end)
        self.entries.append((encoded, offset, crc, written, size))

    def close(self) -> None:
        start = self.handle.tell()
        for encoded, offset, crc, written, size in self.entries:
            self.handle.write(_CENTRAL.pack(0x02014B50, _MADE_BY, _VERSION, 0, _DEFLATED, self.time, self.date,
                                            crc, written, size, len(encoded), 0, 0, 0, 0, _OWNER_RW, offset)
                              + encoded)
        directory = self.handle.tell() - start
        count = len(self.entries)
        self.handle.write(_END.pack(0x06054B50, 0, 0, count, count, directory, start, 0))
