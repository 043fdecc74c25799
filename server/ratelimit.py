"""An optional per-client rate limit on /api/attention, for a server open to the internet. Off by default.

Each client address has a token bucket that holds RATE_LIMIT_PER_MINUTE requests and refills at that many a
minute; a request that finds it empty gets 429 with Retry-After. The client is the peer address, or — only
when the peer is one of TRUSTED_PROXIES (the nginx in front) — the address that proxy put in X-Forwarded-For,
so a client cannot pick its own identity by sending the header itself.

The buckets live in the worker process: with W gunicorn workers a client gets at most W × the limit. Memory
is bounded: an address idle for a minute has a full bucket again and is forgotten, and at most MAX_CLIENTS
addresses are remembered (the longest idle is forgotten first, which only ever errs towards letting it in).
"""

import ipaddress
import math
import threading
import time
from collections import OrderedDict

from flask import Flask, request

from .api import error_response

# The page, /api/models and /healthz cost nothing worth limiting; a comparison is two sentences through the model.
LIMITED_ENDPOINTS = {"api.attention", "compare.compare"}
MAX_CLIENTS = 20_000  # ≈ 450 bytes each (measured): under 10 MB however many addresses a flood uses
MAX_ADDRESS_CHARS = 64  # an IPv6 address with a zone fits; a forged header cannot grow a key


class RateLimiter:
    def __init__(self, per_minute: int, max_clients: int = MAX_CLIENTS, clock=time.monotonic):
        assert per_minute > 0
        self.capacity = float(per_minute)
        self.refill_per_second = per_minute / 60
        self.max_clients, self.clock = max_clients, clock
        self.buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # address → (tokens, at); oldest first
        self.lock = threading.Lock()

    def acquire(self, address: str) -> float:
        """Take one request from `address`'s bucket: 0.0 if it may go ahead, else the seconds until it may."""
        now = self.clock()
        with self.lock:
            self.forget_idle(now)
            tokens, at = self.buckets.pop(address, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - at) * self.refill_per_second)
            allowed = tokens >= 1
            self.buckets[address] = (tokens - 1 if allowed else tokens, now)  # back in, as the most recent
            return 0.0 if allowed else (1 - tokens) / self.refill_per_second

    def forget_idle(self, now: float) -> None:
        refill_seconds = self.capacity / self.refill_per_second  # an empty bucket is full again after this
        while self.buckets:
            _, at = next(iter(self.buckets.values()))
            if now - at < refill_seconds and len(self.buckets) < self.max_clients:
                break
            self.buckets.popitem(last=False)


def parse_networks(setting: str) -> list:
    networks = []
    for item in filter(None, (part.strip() for part in setting.split(","))):
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise SystemExit(f"TRUSTED_PROXIES: {item!r} is not an IP address or network; give addresses like "
                             "127.0.0.1 or networks like 10.0.0.0/8, separated by commas") from None
    return networks


def is_trusted(address: str, networks: list) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


def client_address(peer: str, forwarded_for: str, trusted: list) -> str:
    """The peer, unless it is a trusted proxy: then the rightmost X-Forwarded-For hop that is not one.

    Each proxy appends the address it saw, so hops to the left of the last untrusted one were written by the
    client and prove nothing."""
    if not is_trusted(peer, trusted):
        return peer[:MAX_ADDRESS_CHARS]
    hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
    for hop in reversed(hops):
        if not is_trusted(hop, trusted):
            return hop[:MAX_ADDRESS_CHARS]
    return (hops[0] if hops else peer)[:MAX_ADDRESS_CHARS]


def init_app(app: Flask) -> None:
    """Limit /api/attention per client when RATE_LIMIT_PER_MINUTE > 0; do nothing otherwise."""
    trusted = parse_networks(app.config["TRUSTED_PROXIES"])
    per_minute = app.config["RATE_LIMIT_PER_MINUTE"]
    if per_minute <= 0:
        return
    limiter = RateLimiter(per_minute)
    app.extensions["heads.ratelimit"] = limiter

    @app.before_request
    def limit_rate():
        if request.endpoint not in LIMITED_ENDPOINTS:
            return None
        address = client_address(request.remote_addr or "", request.headers.get("X-Forwarded-For", ""), trusted)
        wait = limiter.acquire(address)
        if wait <= 0:
            return None
        seconds = max(1, math.ceil(wait))
        response = error_response(f"too many requests from this address; try again in {seconds} "
                                  f"second{'s' if seconds != 1 else ''}", 429)
        response.headers["Retry-After"] = str(seconds)
        return response
