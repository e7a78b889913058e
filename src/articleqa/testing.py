"""Real servers in subprocesses, for tests and benchmarks: ``articleqa serve`` on a free 127.0.0.1 port,
Milvus's native engine (milvus-lite 2.5.1) as a gRPC server, and a Ray cluster of several nodes.

One helper each, so that the test suite and the benchmarks start, wait for and stop them the same way.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
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

    def __init__(
        self,
        articles: Path,
        index_dir: Path,
        env: dict | None = None,
        extra_args: list[str] | None = None,
        log_path: Path | None = None,
        workers: int | None = None,
    ):
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
            argv = [
                sys.executable,
                "-m",
                "uvicorn",
                "app.main:app",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--workers",
                str(workers),
                # open chat streams (a page's heartbeat) must not hold a stopping worker forever
                "--timeout-graceful-shutdown",
                "5",
                *(extra_args or []),
            ]
        else:
            argv = [
                sys.executable,
                "-m",
                "articleqa.cli",
                "serve",
                "--port",
                str(self.port),
                "--index-dir",
                str(index_dir),
                "--articles",
                str(articles),
                *(extra_args or []),
            ]
        # a session of its own: stop() ends the server and every worker process it spawned
        self.proc = subprocess.Popen(
            argv, stdout=self._log, stderr=subprocess.STDOUT, env=full_env, cwd=ROOT, start_new_session=True
        )

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
        _stop_group(self.proc, grace=20)  # the workers too, even where the supervisor is gone
        self._log.close()

    def __enter__(self) -> "ServerProcess":
        try:
            return self.wait_ready()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc) -> None:
        self.stop()


# --- Milvus's own engine --------------------------------------------------------------------------------------
# milvus-lite 3.x (what the scale extra pins) is a pure-Python reimplementation; 2.5.1 is Milvus's C++ engine
# but cannot share an environment with 3.x (same module name) and needs setuptools<80. It lives in a small
# second venv, made once, and runs as a gRPC server that pymilvus in the main venv talks to.
NATIVE_VENV = Path(os.environ.get("ARTICLEQA_MILVUS_NATIVE_VENV", ROOT / ".venv-native"))
NATIVE_SERVER = """
import sys
from milvus_lite.server import Server
server = Server(sys.argv[1], address=sys.argv[2])
if not server.start():
    sys.exit("milvus-lite native server did not start")
server._p.wait()
"""


def native_milvus_python() -> Path:
    """The Python of the native-engine venv (``.venv-native``, made on first use: milvus-lite 2.5.1).

    A ``.pth`` file appends this interpreter's packages (pymilvus, articleqa, pytest, ...) to its path,
    *after* its own: there milvus-lite 2.5.1 shadows the 3.x of the main venv, so the Milvus store opens
    a ``milvus:FILE.db`` with Milvus's native engine (see tests/test_milvus.py, native-file)."""
    import sysconfig

    marker = NATIVE_VENV / ".installed-milvus-lite-2.5.1"
    if not marker.exists():
        subprocess.run(["python3", "-m", "venv", "--clear", str(NATIVE_VENV)], check=True)
        subprocess.run(
            [str(NATIVE_VENV / "bin" / "pip"), "install", "-q", "milvus-lite==2.5.1", "setuptools<80"], check=True
        )
        marker.touch()
    python = NATIVE_VENV / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    main = sysconfig.get_paths()["purelib"]
    (Path(site) / "zz_articleqa_main_venv.pth").write_text(f"import site; site.addsitedir({main!r})\n")
    return python


class NativeMilvusServer:
    """Milvus's native engine serving ``folder/native.db`` on ``http://127.0.0.1:PORT`` (``self.url``);
    a context manager. The store reaches it as ``milvus:http://127.0.0.1:PORT``, the remote-server path."""

    def __init__(self, folder: Path, start_timeout: float = 120):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = self.folder / "server.log"
        self.start_timeout = start_timeout
        self.proc: subprocess.Popen | None = None

    def start(self) -> "NativeMilvusServer":
        python = native_milvus_python()
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [str(python), "-c", NATIVE_SERVER, str(self.folder / "native.db"), f"127.0.0.1:{self.port}"],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.time() + self.start_timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"milvus-lite 2.5.1 server exited: {self.log_path.read_text(errors='replace')[-2000:]}"
                )
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return self
            except OSError:
                if time.time() > deadline:
                    self.stop()
                    raise RuntimeError(f"milvus-lite 2.5.1 server did not listen within {self.start_timeout:.0f} s")
                time.sleep(0.5)

    def stop(self) -> None:
        if self.proc is None:
            return
        _stop_group(self.proc)
        self._log.close()
        self.proc = None

    def __enter__(self) -> "NativeMilvusServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _stop_group(proc: subprocess.Popen, grace: float = 15) -> None:
    """SIGTERM the process group of ``proc`` (started with start_new_session), then SIGKILL what is left."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(grace)
    except ProcessLookupError:
        return
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


# --- a Ray cluster of several nodes on this machine -----------------------------------------------------------
class RayCluster:
    """A head and further nodes, each ``ray start --block`` with its own CPUs, on a loopback address, with
    token authentication (Ray's default) and a token of their own (``RAY_AUTH_TOKEN_PATH`` in ``folder``, so
    ``~/.ray`` is not touched). ``self.address`` is what ``--ray-address`` takes; ``self.driver_env`` the
    environment a driver needs (the token path: articleqa turns token mode on by itself when it has one).

    Ray replaces 127.0.0.1 with the machine's outward address for anything multi-node, so the nodes use
    127.0.0.2, which is loopback as well: nothing leaves the machine. Stopping kills every process the
    cluster started (found by the token path in their environment), not other Ray clusters of the machine.
    """

    def __init__(
        self, folder: Path, cpus: tuple[int, ...] = (1, 1), object_store_mb: int = 200, host: str = "127.0.0.2"
    ):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.cpus = cpus
        self.host = host
        self.port = free_port()
        self.address = f"{host}:{self.port}"
        self.token_path = self.folder / "auth_token"
        self.token_path.write_text(secrets.token_hex(32))
        self.token_path.chmod(0o600)
        self.object_store_bytes = object_store_mb * 1024 * 1024
        self.driver_env = {"RAY_AUTH_TOKEN_PATH": str(self.token_path)}
        self.nodes: list[subprocess.Popen] = []
        self._logs: list = []
        # Ray's session folder holds unix sockets, whose paths may not pass 107 bytes: a short one in /tmp
        self.ray_dir = tempfile.mkdtemp(prefix="aqray-")
        self.ray_cli = str(Path(sys.executable).with_name("ray"))

    def _ray(self, *args: str, log_name: str) -> subprocess.Popen:
        env = {
            **os.environ,
            "RAY_AUTH_MODE": "token",
            "RAY_AUTH_TOKEN_PATH": str(self.token_path),
            "RAY_USAGE_STATS_ENABLED": "0",
        }
        log = open(self.folder / log_name, "wb")
        self._logs.append(log)
        return subprocess.Popen(
            [
                self.ray_cli,
                "start",
                *args,
                "--node-ip-address",
                self.host,
                "--object-store-memory",
                str(self.object_store_bytes),
                "--disable-usage-stats",
                "--block",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )

    def start(self, timeout: float = 180) -> "RayCluster":
        self.nodes.append(
            self._ray(
                "--head",
                "--port",
                str(self.port),
                "--num-cpus",
                str(self.cpus[0]),
                "--include-dashboard",
                "false",
                "--temp-dir",
                self.ray_dir,
                log_name="head.log",
            )
        )
        self._wait(1, timeout)
        for i, n in enumerate(self.cpus[1:], start=1):
            self.nodes.append(self._ray("--address", self.address, "--num-cpus", str(n), log_name=f"node{i}.log"))
            self._wait(i + 1, timeout)
        return self

    def _wait(self, nodes: int, timeout: float) -> None:
        """Until ``ray status`` counts ``nodes`` live nodes (a node's raylet registered with the head)."""
        deadline = time.time() + timeout
        env = {**os.environ, "RAY_AUTH_MODE": "token", **self.driver_env}
        while True:
            for p in self.nodes:
                if p.poll() is not None:
                    raise RuntimeError(f"a Ray node exited with {p.returncode}: see {self.folder}/*.log")
            r = subprocess.run(
                [self.ray_cli, "status", "--address", self.address], capture_output=True, text=True, env=env
            )
            active = r.stdout.split("Pending:")[0] if "Active:" in r.stdout else ""
            if active.count("node_") >= nodes:
                return
            if time.time() > deadline:
                self.stop()
                raise RuntimeError(
                    f"Ray cluster: {nodes} node(s) not up within {timeout:.0f} s: {r.stdout[-800:]}{r.stderr[-800:]}"
                )
            time.sleep(1)

    def stop(self) -> None:
        for p in reversed(self.nodes):
            _stop_group(p, grace=10)
        marker = f"RAY_AUTH_TOKEN_PATH={self.token_path}".encode()
        for proc in Path("/proc").glob("[0-9]*"):  # actors and workers run in process groups of their own
            try:
                if int(proc.name) != os.getpid() and marker in (proc / "environ").read_bytes().split(b"\0"):
                    os.kill(int(proc.name), signal.SIGKILL)
            except (OSError, ValueError):
                pass
        self.nodes.clear()
        shutil.rmtree(self.ray_dir, ignore_errors=True)
        for log in self._logs:
            log.close()
        self._logs.clear()

    def __enter__(self) -> "RayCluster":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
