"""The spool: each kept file's redacted text, with its word index (exact token budgets), on disk between the
two parallel passes, so no pass holds the corpus in memory.

Each process appends its entries to one file of the spool directory (named by host and pid: on a Ray cluster
the spool is on a filesystem the nodes share) (creating and opening a file per source
file, not writing the bytes, is what costs on a busy disk); an entry is found by its `Location` (file name,
offset, length) and read with one `pread`. An entry is a 4-byte length, the `WordIndex` bytes (empty without
exact budgets), then the text in UTF-8. `Reader` keeps the last few entries it read, since neighbouring files
show the same related files as context.
"""

from __future__ import annotations

import os
import socket
from collections import OrderedDict

from finetune.corpus.tokencount import WordCounter, WordIndex

Location = tuple[str, int, int]  # (file name in the spool directory, offset, length)


class Writer:
    """Appends entries to this process's file of the spool (a forked child opens its own)."""

    def __init__(self, spool: str) -> None:
        self.spool = spool
        self.pid = -1
        self.fd = -1
        self.name = ""
        self.offset = 0

    def write(self, text: str, index: WordIndex | None) -> Location:
        return self.write_bytes(index.to_bytes() if index is not None else b"", text.encode("utf-8"))

    def write_bytes(self, blob: bytes, text: bytes) -> Location:
        """An entry from its parts as bytes: the `WordIndex` bytes and the UTF-8 text (a cached file's)."""
        if self.pid != os.getpid():
            self.pid, self.name = os.getpid(), f"{socket.gethostname()}-{os.getpid()}.spool"
            self.fd = os.open(os.path.join(self.spool, self.name), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            self.offset = os.fstat(self.fd).st_size
        data = memoryview(len(blob).to_bytes(4, "little") + blob + text)
        loc = (self.name, self.offset, len(data))
        while data:  # unbuffered: the bytes are the other processes' to read as soon as this returns
            data = data[os.write(self.fd, data):]
        self.offset += loc[2]
        return loc


class Reader:
    """Entries as (text, `WordIndex` or None), the last `size` of them kept."""

    def __init__(self, spool: str, counter: WordCounter | None, size: int = 32) -> None:
        self.spool, self.counter, self.size = spool, counter, size
        self.fds: dict[str, int] = {}
        self.recent: OrderedDict[Location, tuple[str, WordIndex | None]] = OrderedDict()

    def read(self, loc: Location) -> tuple[str, bytes]:
        """(text, index bytes) of an entry."""
        name, offset, length = loc
        fd = self.fds.get(name)
        if fd is None:
            fd = self.fds[name] = os.open(os.path.join(self.spool, name), os.O_RDONLY)
        data = os.pread(fd, length, offset)
        n = int.from_bytes(data[:4], "little")
        return data[4 + n:].decode("utf-8"), data[4:4 + n]

    def get(self, loc: Location) -> tuple[str, WordIndex | None]:
        hit = self.recent.get(loc)
        if hit is not None:
            self.recent.move_to_end(loc)
            return hit
        text, blob = self.read(loc)
        index = WordIndex.from_bytes(self.counter, text, blob) if blob and self.counter is not None else None
        self.recent[loc] = (text, index)
        if len(self.recent) > self.size:
            self.recent.popitem(last=False)
        return text, index

    def close(self) -> None:
        for fd in self.fds.values():
            os.close(fd)
        self.fds.clear()

    def __del__(self) -> None:  # a worker's reader lives as long as its process; an in-process one is replaced
        self.close()
