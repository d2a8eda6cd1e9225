"""``python -m secretrotation_dev.devcluster up|down|provision|serve``.

``up`` starts a supervisor in the background and returns once the cluster is
ready; the supervisor owns every component, and each component dies with it.
``down`` stops the supervisor and waits until nothing is left. Both are
idempotent.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from secretrotation_dev.devcluster import binaries
from secretrotation_dev.devcluster.controlplane import ControlPlane

SUPERVISOR_PID = "supervisor.pid"
READY_MARK = "ready"


def _alive(pid: int, state_dir: Path) -> bool:
    """True when ``pid`` is the supervisor of this state folder (not a reused pid)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"serve" in cmdline and str(state_dir).encode() in cmdline


def _supervisor_pid(state_dir: Path) -> int | None:
    try:
        pid = int((state_dir / SUPERVISOR_PID).read_text())
    except (OSError, ValueError):
        return None
    return pid if _alive(pid, state_dir) else None


def serve(state_dir: Path, nodes: int, readiness_delay: float) -> None:
    """Run the cluster in the foreground until SIGTERM or SIGINT."""
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    plane = ControlPlane(
        state_dir, binaries.find(), nodes=nodes, readiness_delay_seconds=readiness_delay, die_with_parent=True
    )
    try:
        plane.start()
        (state_dir / READY_MARK).write_text(plane.server + "\n")
        print(f"control plane ready at {plane.server}", flush=True)
        stop.wait()
    finally:
        with contextlib.suppress(FileNotFoundError):
            (state_dir / READY_MARK).unlink()
        plane.stop()


def up(state_dir: Path, nodes: int, readiness_delay: float, timeout: float) -> int:
    if _supervisor_pid(state_dir) and (state_dir / READY_MARK).exists():
        print(f"cluster already running; kubeconfig: {state_dir / 'kubeconfig'}")
        return 0
    down(state_dir)
    # A cluster that is not running starts empty: stale objects would only confuse.
    shutil.rmtree(state_dir / "etcd", ignore_errors=True)
    binaries.find()  # provision in the foreground, so its progress is visible
    state_dir.mkdir(parents=True, exist_ok=True)
    (state_dir / "logs").mkdir(exist_ok=True)
    with open(state_dir / "logs" / "supervisor.log", "ab") as log:
        supervisor = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "secretrotation_dev.devcluster",
                "serve",
                "--state-dir",
                str(state_dir),
                "--nodes",
                str(nodes),
                "--readiness-delay",
                str(readiness_delay),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    (state_dir / SUPERVISOR_PID).write_text(f"{supervisor.pid}\n")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (state_dir / READY_MARK).exists():
            print(f"cluster up; kubeconfig: {state_dir / 'kubeconfig'}")
            return 0
        if supervisor.poll() is not None:
            break
        time.sleep(0.3)
    down(state_dir)
    print(f"cluster did not start; see {state_dir / 'logs'}", file=sys.stderr)
    return 1


def down(state_dir: Path, timeout: float = 30.0) -> int:
    pid = _supervisor_pid(state_dir)
    if pid is not None:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _alive(pid, state_dir) and time.monotonic() < deadline:
            time.sleep(0.2)
        if _alive(pid, state_dir):
            os.kill(pid, signal.SIGKILL)  # its components die with it (PR_SET_PDEATHSIG)
        print("cluster stopped")
    for leftover in (SUPERVISOR_PID, READY_MARK):
        with contextlib.suppress(FileNotFoundError):
            (state_dir / leftover).unlink()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m secretrotation_dev.devcluster")
    parser.add_argument("command", choices=["up", "down", "serve", "provision"])
    parser.add_argument("--state-dir", type=Path, default=Path(".cluster"))
    parser.add_argument("--nodes", type=int, default=1)
    parser.add_argument("--readiness-delay", type=float, default=0.5, help="seconds from container start to Ready")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for the cluster")
    args = parser.parse_args(argv)
    state_dir = args.state_dir.resolve()
    if args.command == "provision":
        print(binaries.find())
        return 0
    if args.command == "serve":
        serve(state_dir, args.nodes, args.readiness_delay)
        return 0
    if args.command == "up":
        return up(state_dir, args.nodes, args.readiness_delay, args.timeout)
    return down(state_dir)


if __name__ == "__main__":
    sys.exit(main())
