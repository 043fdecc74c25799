"""The optional per-client rate limit: a token bucket per address, off by default, 429 with Retry-After."""

import pytest

from twelve_heads.server import create_app
from twelve_heads.server.ratelimit import RateLimiter, client_address, parse_networks


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_rate_limiter_allows_a_burst_then_one_request_per_refill():
    clock = FakeClock()
    limiter = RateLimiter(6, clock=clock)  # 6 a minute: one every 10 s
    assert [limiter.acquire("a") for _ in range(6)] == [0.0] * 6
    assert limiter.acquire("a") == pytest.approx(10.0)
    assert limiter.acquire("b") == 0.0  # another client has its own bucket
    clock.now += 10
    assert limiter.acquire("a") == 0.0 and limiter.acquire("a") == pytest.approx(10.0)


def test_rate_limiter_memory_is_bounded():
    clock = FakeClock()
    limiter = RateLimiter(6, max_clients=100, clock=clock)
    for n in range(1000):
        limiter.acquire(f"10.0.{n // 256}.{n % 256}")
    assert len(limiter.buckets) == 100
    clock.now += 60  # idle a minute: every bucket is full again, so nothing needs remembering
    limiter.acquire("a")
    assert list(limiter.buckets) == ["a"]


TRUSTED = parse_networks("127.0.0.1, 10.0.0.0/8")


@pytest.mark.parametrize("peer, forwarded_for, client", [
    ("203.0.113.9", "", "203.0.113.9"),
    ("203.0.113.9", "198.51.100.1", "203.0.113.9"),  # not from our proxy: the header is the client's own claim
    ("127.0.0.1", "198.51.100.1", "198.51.100.1"),
    ("127.0.0.1", "1.1.1.1, 198.51.100.1", "198.51.100.1"),  # the client wrote 1.1.1.1; nginx appended the peer
    ("127.0.0.1", "198.51.100.1, 10.0.0.2", "198.51.100.1"),  # two proxies of ours
    ("127.0.0.1", "not-an-address", "not-an-address"),
    ("127.0.0.1", "", "127.0.0.1"),
    ("127.0.0.1", "10.0.0.3, 10.0.0.2", "10.0.0.3"),
])
def test_the_client_is_the_peer_unless_a_trusted_proxy_forwarded_it(peer, forwarded_for, client):
    assert client_address(peer, forwarded_for, TRUSTED) == client


def test_trusted_proxies_must_be_addresses():
    with pytest.raises(SystemExit, match="TRUSTED_PROXIES: 'nginx' is not an IP address or network"):
        parse_networks("127.0.0.1, nginx")


def test_rate_limit_is_off_by_default(app, client):
    assert "heads.ratelimit" not in app.extensions
    assert {client.post("/api/attention", json={"text": "again"}).status_code for _ in range(30)} == {200}


def test_rate_limit_gives_429_with_retry_after_on_attention_only(models_dir):
    app = create_app({"MODELS_DIR": str(models_dir), "RATE_LIMIT_PER_MINUTE": 3, "TRUSTED_PROXIES": "127.0.0.1"})
    app.extensions["heads.ratelimit"].clock = FakeClock()
    client = app.test_client()

    def attend(address="127.0.0.1", **headers):
        return client.post("/api/attention", json={"text": "a"}, headers=headers,
                           environ_base={"REMOTE_ADDR": address})

    assert [attend().status_code for _ in range(3)] == [200] * 3
    refused = attend()
    assert (refused.status_code, refused.json) == (429, {"error": "too many requests from this address; try again "
                                                                  "in 20 seconds"})
    assert refused.headers["Retry-After"] == "20" and refused.headers["X-Content-Type-Options"] == "nosniff"
    assert client.get("/api/models").status_code == 200 and client.get("/").status_code == 200
    assert attend("192.0.2.7").status_code == 200  # another address
    assert attend("192.0.2.7", **{"X-Forwarded-For": "198.51.100.1"}).status_code == 200  # ignored: not a proxy
    assert [attend("192.0.2.7").status_code for _ in range(2)] == [200, 429]
    assert attend(**{"X-Forwarded-For": "198.51.100.1"}).status_code == 200  # forwarded by a trusted proxy
