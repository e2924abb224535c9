"""What every server benchmark shares: CPU pinning, `commgrid serve` as a process, `wrk` runs, the machine.

The server under test runs on core `SERVER_CPU`; load generators (wrk, the Python publishers, the webhook
receiver) run on `LOAD_CPU`, so a figure is the server's, not the loader's. References (the no-op stack, the
SQLite ceiling, the plain aiohttp client) are measured in the same run on the same cores.
"""

from __future__ import annotations

import asyncio
import datetime
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
SERVER_CPU, LOAD_CPU = 0, 1
BOTH_CPUS = f"{SERVER_CPU},{LOAD_CPU}"  # what a process may use when it is to share both cores
POSTGRES_ADMIN = os.environ.get("COMMGRID_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")


def pinned(cpu: int | str | None, args: list[str]) -> list[str]:
    """`args` run under `taskset -c cpu` (a core, or a list such as `BOTH_CPUS`; unpinned when `cpu` is None or
    the machine has one core)."""
    if cpu is None or (os.cpu_count() or 1) < 2:
        return args
    return ["taskset", "-c", str(cpu), *args]


def pin_self(cpu: int) -> None:
    """Keep this process (and children that do not pin themselves) on `cpu`."""
    if (os.cpu_count() or 1) >= 2:
        os.sched_setaffinity(0, {cpu})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(check: Any, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.02)


def get_json(url: str) -> Any:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return orjson.loads(response.read())
    except OSError:
        return None


def make_events(count: int, pad: int = 800, sent_at: float | None = None) -> list[dict[str, Any]]:
    """`count` Event Grid events of about 1 KB each."""
    data: dict[str, Any] = {"pad": "x" * pad}
    if sent_at is not None:
        data["sentAt"] = sent_at
    return [{"id": str(uuid.uuid4()), "subject": f"/bench/{i}", "eventType": "Bench.Event",
             "eventTime": "2024-01-01T00:00:00Z", "dataVersion": "1.0", "data": {"n": i, **data}}
            for i in range(count)]


# ------------------------------------------------------------------------------------------------------------
# commgrid serve


@dataclass
class Server:
    """`commgrid serve` on a free port, pinned to `cpu`, over `data_dir` (and `store` when given)."""

    data_dir: Path
    store: str | None = None
    cpu: int | str | None = SERVER_CPU
    port: int = 0
    process: subprocess.Popen | None = None
    workers: int = 1  # `serve --workers`

    def __post_init__(self) -> None:
        self.port = self.port or free_port()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _store_args(self) -> list[str]:
        return ["--data-dir", str(self.data_dir), *(["--store", self.store] if self.store else [])]

    def start(self) -> Server:
        env = {k: v for k, v in os.environ.items() if not k.startswith("COMMGRID_")}
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = (self.data_dir / f"server-{self.port}.log").open("ab")
        args = [sys.executable, "-m", "commgrid.cli", "serve", "--port", str(self.port), "--tls-port", "0",
                *(["--workers", str(self.workers)] if self.workers != 1 else []), *self._store_args()]
        self.process = subprocess.Popen(pinned(self.cpu, args), stdout=log, stderr=subprocess.STDOUT, env=env)
        wait_until(lambda: get_json(f"{self.url}/healthz") is not None, "commgrid serve")
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(30)
        self.process = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def cli(self, *args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "commgrid.cli", *args, *self._store_args()],
                              capture_output=True, text=True, check=False)
        if done.returncode:
            raise SystemExit(f"commgrid {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
        return done.stdout

    def create_topic(self, name: str) -> dict[str, Any]:
        return orjson.loads(self.cli("topic", "create", name, "--json"))


def start_noop(cpu: int = SERVER_CPU) -> tuple[subprocess.Popen, str]:
    """The same HTTP stack as `commgrid serve` (Starlette, uvicorn, httptools, uvloop) with a route that only
    reads the body; returns the process and its publish URL."""
    port = free_port()
    args = [sys.executable, "-m", "uvicorn", "bench._noop:app", "--port", str(port), "--log-level", "warning",
            "--http", "httptools", "--loop", "uvloop", "--no-access-log"]
    process = subprocess.Popen(pinned(cpu, args), cwd=ROOT)
    wait_until(lambda: get_json(f"http://127.0.0.1:{port}/healthz") is not None, "no-op server")
    return process, f"http://127.0.0.1:{port}/topics/bench/api/events"


# ------------------------------------------------------------------------------------------------------------
# Postgres databases of their own


async def _admin(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(POSTGRES_ADMIN)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def postgres_available() -> bool:
    try:
        asyncio.run(_admin("SELECT 1"))
    except (OSError, Exception):
        return False
    return True


class PostgresDatabase:
    """A database created for one benchmark and dropped after it."""

    def __init__(self) -> None:
        self.name = f"commgrid_bench_{uuid.uuid4().hex[:8]}"
        self.url = POSTGRES_ADMIN.rsplit("/", 1)[0] + f"/{self.name}"

    def __enter__(self) -> str:
        asyncio.run(_admin(f'CREATE DATABASE "{self.name}"'))
        return self.url

    def __exit__(self, *exc: object) -> None:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'))


def temp_dir() -> Path:
    return Path(tempfile.mkdtemp(prefix="commgrid-bench-"))


def remove(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


# ------------------------------------------------------------------------------------------------------------
# wrk

WRK_SCRIPT = """
local f = io.open("{body}", "rb")
wrk.body = f:read("*a")
f:close()
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["aeg-sas-key"] = "{key}"
"""


@dataclass
class WrkResult:
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int
    requests: int = 0
    cpu_seconds: float = 0.0  # CPU time the measured server used during the run (with `pid` given)

    @property
    def cpu_us_per_request(self) -> float:
        """The server's CPU time per request: what its rate would be on a core of its own, whatever else runs."""
        return self.cpu_seconds / self.requests * 1e6 if self.requests else float("nan")

    def events_per_s(self, batch: int) -> float:
        return self.requests_per_s * batch


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process `pid` and its threads so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wrk(url: str, body: bytes, key: str = "", *, seconds: float, connections: int = 32,
        cpu: int | str | None = LOAD_CPU, pid: int | None = None) -> WrkResult:
    """`wrk` posting `body` to `url` for `seconds` with `connections` keep-alive connections on one thread."""
    if not shutil.which("wrk"):
        raise SystemExit("wrk is not installed: apt-get install wrk (see bench/README.md)")
    directory = Path(tempfile.mkdtemp(prefix="commgrid-wrk-"))
    try:
        (directory / "body.json").write_bytes(body)
        script = directory / "post.lua"
        script.write_text(WRK_SCRIPT.format(body=directory / "body.json", key=key))
        args = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency", "-s", str(script), url]
        used = cpu_seconds(pid) if pid else 0.0
        out = subprocess.run(pinned(cpu, args), capture_output=True, text=True, check=True).stdout
        used = cpu_seconds(pid) - used if pid else 0.0
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    result = parse_wrk(out)
    result.cpu_seconds = used
    return result


def start_wrk(url: str, body: bytes, key: str, *, seconds: float, connections: int, cpu: int | str | None
              ) -> tuple[subprocess.Popen, Path]:
    """`wrk` started in the background (for several loads at once); finish with `finish_wrk`."""
    directory = Path(tempfile.mkdtemp(prefix="commgrid-wrk-"))
    (directory / "body.json").write_bytes(body)
    script = directory / "post.lua"
    script.write_text(WRK_SCRIPT.format(body=directory / "body.json", key=key))
    args = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency", "-s", str(script), url]
    return subprocess.Popen(pinned(cpu, args), stdout=subprocess.PIPE, text=True), directory


def finish_wrk(started: tuple[subprocess.Popen, Path]) -> WrkResult:
    process, directory = started
    out, _ = process.communicate()
    shutil.rmtree(directory, ignore_errors=True)
    return parse_wrk(out)


def parse_wrk(out: str) -> WrkResult:
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    errors = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses:\s+(\d+)", out))
    errors += sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    done = re.search(r"(\d+) requests in", out)
    return WrkResult(rate, _latency(out, "50%"), _latency(out, "99%"), errors, int(done.group(1)) if done else 0)


def _latency(out: str, label: str) -> float:
    match = re.search(rf"{re.escape(label)}\s+([\d.]+)(us|ms|s)\b", out)
    if not match:
        return float("nan")
    value, unit = float(match.group(1)), match.group(2)
    return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value


# ------------------------------------------------------------------------------------------------------------
# The machine


def machine() -> dict[str, str]:
    model = "unknown"
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {"cpu": model, "cores": str(os.cpu_count()), "kernel": platform.release(),
            "python": platform.python_version(),
            "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")}


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


# ------------------------------------------------------------------------------------------------------------
# Table rows


@dataclass
class Row:
    """One line of the results table: commgrid's figure beside its reference measured in the same run."""

    figure: str
    value: str
    reference: str = "–"
    ratio: float | None = None
    goal: str = "–"
    met: bool | None = None

    def cells(self) -> list[str]:
        ratio = "–" if self.ratio is None else f"{self.ratio:.2f}"
        met = {True: "yes", False: "no", None: "–"}[self.met]
        return [self.figure, self.value, self.reference, ratio, self.goal, met]


def ratio_row(figure: str, value: float, unit: str, ref_label: str, ref: float, goal: float,
              ratio: float | None = None) -> Row:
    """`value` beside `ref`; the ratio is theirs unless given (a median of rounds' ratios)."""
    if ratio is None:
        ratio = value / ref if ref else 0.0
    return Row(figure, f"{value:,.0f} {unit}", f"{ref_label} {ref:,.0f} {unit}", ratio, f"≥ {goal}", ratio >= goal)
