"""A least-recently-used cache bounded in bytes, not entries: one long sentence can weigh as much as a
thousand short ones, and the server's memory is what must stay bounded."""

import threading
from collections import OrderedDict


class ByteLRU:
    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self.size = 0
        self.entries: OrderedDict[object, bytes] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, key) -> bytes | None:
        with self.lock:
            value = self.entries.get(key)
            if value is not None:
                self.entries.move_to_end(key)
            return value

    def put(self, key, value: bytes) -> None:
        if len(value) > self.max_bytes:
            return  # would evict everything and still not fit
        with self.lock:
            old = self.entries.pop(key, None)
            if old is not None:
                self.size -= len(old)
            self.entries[key] = value
            self.size += len(value)
            while self.size > self.max_bytes:
                _, evicted = self.entries.popitem(last=False)
                self.size -= len(evicted)
