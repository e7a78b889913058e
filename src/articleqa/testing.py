"""A real ``articleqa serve`` in a subprocess on a free 127.0.0.1 port, for tests and benchmarks.

One helper so that the test suite and the benchmarks start, wait for and stop the server the same way.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """``articleqa serve --articles ARTICLES --index-dir INDEX`` on 127.0.0.1; usable as a context manager.

    The log (stdout and stderr) goes to ``log_path`` (default: beside the index folder); the rate limit
    is off unless ``env`` sets it.
    """

    def __init__(self, articles: Path, index_dir: Path, env: dict | None = None, extra_args: list[str] | None = None,
                 log_path: Path | None = None, workers: int | None = None):
        """With ``workers`` the deployable app runs instead: ``uvicorn app.main:app --workers N`` from the
        checkout, configured through ARTICLEQA_ARTICLES_DIR / ARTICLEQA_INDEX_DIR."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = Path(log_path or Path(index_dir).parent / f"server-{self.port}.log")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        full_env = {**os.environ, "ARTICLEQA_RATE_LIMIT_PER_MINUTE": "0", **(env or {})}
        self._log = open(self.log_path, "wb")
        if workers:
            full_env.update(ARTICLEQA_ARTICLES_DIR=str(articles), ARTICLEQA_INDEX_DIR=str(index_dir))
            argv = [sys.executable, "-m", "uvicorn", "app.main:app", "--host", "127.0.0.1", "--port", str(self.port),
                    "--workers", str(workers), *(extra_args or [])]
        else:
            argv = [sys.executable, "-m", "articleqa.cli", "serve", "--port", str(self.port),
                    "--index-dir", str(index_dir), "--articles", str(articles), *(extra_args or [])]
        self.proc = subprocess.Popen(argv, stdout=self._log, stderr=subprocess.STDOUT, env=full_env, cwd=ROOT)

    def wait_ready(self, timeout: float = 240) -> "ServerProcess":
        """Poll /api/health until it answers 200; raise with the server's log if it exits or times out."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if httpx.get(self.url + "/api/health", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"server not ready after {timeout}s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-5000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()

    def __enter__(self) -> "ServerProcess":
        try:
            return self.wait_ready()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc) -> None:
        self.stop()
