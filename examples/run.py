"""``./dev run``: a private Redis, the example service and a caller."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_redis(workdir: str):
    """A private redis-server, or fakeredis's TCP server where none is installed."""
    port = _free_port()
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    if os.path.exists(binary):
        proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                 "--appendonly", "no", "--dir", workdir],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for line in proc.stdout:
            if "Ready to accept connections" in line:
                break
        print(f"redis-server on 127.0.0.1:{port}")
        return f"redis://127.0.0.1:{port}/0", proc.terminate
    from fakeredis import TcpFakeServer
    import threading
    server = TcpFakeServer(("127.0.0.1", port), server_type="redis")
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(f"redis-server is not installed: using the embedded fakeredis server on 127.0.0.1:{port}")
    return f"redis://127.0.0.1:{port}/0", server.shutdown


def start_service(script: Path, redis_url: str, workdir: str, env=None) -> subprocess.Popen:
    """Start a service and wait for its sd_notify READY=1, as systemd would."""
    notify_path = os.path.join(workdir, f"notify-{script.stem}")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(notify_path)
    sock.settimeout(30)
    proc = subprocess.Popen([sys.executable, str(script)],
                            env={**os.environ, "DAEBUS_REDIS_URL": redis_url, "NOTIFY_SOCKET": notify_path,
                                 "PYTHONPATH": str(HERE.parent), **(env or {})})
    try:
        while b"READY=1" not in sock.recv(4096):
            pass
    finally:
        sock.close()
    return proc


def main() -> int:
    workdir = tempfile.mkdtemp(prefix="daebus-demo-")
    redis_url, stop_redis = start_redis(workdir)
    os.environ["DAEBUS_REDIS_URL"] = redis_url
    service = start_service(HERE / "hello_service.py", redis_url, workdir)
    try:
        from examples import hello_caller
        hello_caller.main()
    finally:
        service.send_signal(signal.SIGTERM)
        code = service.wait(15)
        print(f"my_service stopped with exit code {code}")
        stop_redis()
        shutil.rmtree(workdir, ignore_errors=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
