from daebus.bus.transport import Backoff, redact


def test_redact_hides_only_the_password():
    assert redact("redis://:s3cret@host:6379/0") == "redis://:***@host:6379/0"
    assert redact("rediss://user:pw@host/1") == "rediss://user:***@host/1"
    assert redact("unix:///run/redis.sock?db=2") == "unix:///run/redis.sock?db=2"


def test_backoff_doubles_up_to_the_cap_and_resets():
    backoff = Backoff(0.1, cap=0.5)
    assert [backoff.next() for _ in range(5)] == [0.1, 0.2, 0.4, 0.5, 0.5]
    backoff.reset()
    assert backoff.next() == 0.1


def test_publisher_connections_do_not_count_against_the_pool_limit():
    import threading

    import redis

    from daebus.bus.transport import Publisher

    client = redis.Redis(max_connections=2)
    publisher = Publisher(client)
    made = []
    client.connection_pool.connection_class = lambda **kw: made.append(kw) or _Conn()

    results = []

    def publish():
        try:
            results.append(publisher("ch", "x"))
        except Exception as exc:  # noqa: BLE001 - a thread's failure is the test's
            results.append(exc)

    threads = [threading.Thread(target=publish) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [0] * 5
    assert len(made) == 5


class _Conn:
    _sock = None

    def connect(self):
        self._sock = object()

    def send_command(self, *args):
        pass

    def read_response(self):
        return 0

    def disconnect(self):
        pass
