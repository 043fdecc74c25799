"""A least-recently-used cache bounded in bytes, not entries: one long sentence can weigh as much as a
thousand short ones, and the server's memory is what must stay bounded."""

import threading
from collections import OrderedDict


class ByteLRU:
    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self.size = 0
        self.entries: OrderedDict[object, tuple[object, int]] = OrderedDict()  # key -> (value, its bytes)
        self.lock = threading.Lock()

    def get(self, key):
        with self.lock:
            entry = self.entries.get(key)
            if entry is None:
                return None
            self.entries.move_to_end(key)
            return entry[0]

    def put(self, key, value, size: int | None = None) -> None:
        """`size`: the value's bytes when it is not a bytes object (len(value) otherwise)."""
        size = len(value) if size is None else size
        if size > self.max_bytes:
            return  # would evict everything and still not fit
        with self.lock:
            old = self.entries.pop(key, None)
            if old is not None:
                self.size -= old[1]
            self.entries[key] = (value, size)
            self.size += size
            while self.size > self.max_bytes:
                _, (_, evicted) = self.entries.popitem(last=False)
                self.size -= evicted
