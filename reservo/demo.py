"""`make run`: the demo on the embedded servers, served by gunicorn as in production."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
# How long the server may take to answer its first request before the demo gives up.
STARTUP_SECONDS = 60
DEMO_USER, DEMO_PASSWORD = "staff", "reservo-demo"


def main() -> int:
    # The demo publishes its staff password: it runs on the embedded servers only, never on
    # a database or cache that a shell's environment happens to point at.
    external = [name for name in ("DATABASE_URL", "REDIS_URL") if os.environ.get(name)]
    if external:
        print(
            f"The demo runs on the embedded PostgreSQL and Redis only, and {' and '.join(external)} "
            f"{'is' if len(external) == 1 else 'are'} set: it would create its published staff "
            f"login there. Unset {' and '.join(external)} to run the demo, or serve that "
            "database with `make serve`.",
            file=sys.stderr,
        )
        return 2
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "reservo.settings")
    os.environ.setdefault("DEBUG", "0")
    host, port = os.environ.get("HOST", "127.0.0.1"), os.environ.get("PORT", "8000")
    # Links in the demo's emails point at this server; its emails are printed on the console.
    os.environ.setdefault("RESERVO_PUBLIC_URL", f"http://{host}:{port}")
    python = sys.executable

    def manage(*args: str) -> None:
        subprocess.run([python, "manage.py", *args], cwd=BASE_DIR, check=True)

    print("Starting the embedded PostgreSQL and Redis (first run: ~10 s)...", flush=True)
    subprocess.run([python, "-m", "reservo.embedded", "start"], cwd=BASE_DIR, check=True)
    manage("migrate", "--noinput", "-v0")
    manage("collectstatic", "--noinput", "-v0")
    manage("seed_demo")
    manage("ensure_demo_staff", DEMO_USER, DEMO_PASSWORD)

    processes = [
        subprocess.Popen(
            [
                str(Path(python).parent / "gunicorn"),
                "-c",
                "reservo/gunicorn_conf.py",
                "reservo.wsgi:application",
            ],
            cwd=BASE_DIR,
        )
    ]
    worker = BASE_DIR / "bookings" / "management" / "commands" / "run_worker.py"
    if worker.exists():
        processes.append(subprocess.Popen([python, "manage.py", "run_worker"], cwd=BASE_DIR))

    base = f"http://{host}:{port}"
    if not _answers(f"{base}/healthz", processes[0]):
        for process in processes:
            process.send_signal(signal.SIGTERM)
            process.wait()
        subprocess.run([python, "-m", "reservo.embedded", "stop"], cwd=BASE_DIR, check=False)
        print("Reservo did not start; see the lines above.", file=sys.stderr)
        return 1
    print(
        f"\nReservo is running.\n"
        f"  Booking pages:  {base}/\n"
        f"  Staff admin:    {base}/admin/  (user {DEMO_USER!r}, password {DEMO_PASSWORD!r})\n"
        f"  API docs:       {base}/api/docs/\n"
        f"  Health:         {base}/healthz\n"
        "Press Ctrl-C to stop.\n",
        flush=True,
    )

    stopping: list[int] = []

    def stop(signum: int, frame: object) -> None:
        stopping.append(signum)
        for process in processes:
            process.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    status = 0
    for process in processes:
        status = status or process.wait()
    subprocess.run([python, "-m", "reservo.embedded", "stop"], cwd=BASE_DIR, check=False)
    # Asked to stop (Ctrl-C, SIGTERM): a clean end, whatever each process said on its way out.
    return 0 if stopping else status


def _answers(url: str, server: subprocess.Popen[bytes]) -> bool:
    """Whether the server answers `url` within a minute (False as soon as it exits)."""
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline and server.poll() is None:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 (loopback)
                return bool(response.status == 200)
        except OSError:
            time.sleep(0.2)
    return False


if __name__ == "__main__":
    sys.exit(main())
