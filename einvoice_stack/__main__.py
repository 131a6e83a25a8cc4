"""`python -m einvoice_stack`: run the whole chain locally until Ctrl-C."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path

from .stack import REPO, Stack, StackConfig, StackError


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m einvoice_stack", description=__doc__)
    parser.add_argument("--run-dir", type=Path, default=REPO / "var" / "demo",
                        help="where rendered configs, data and logs go (default: var/demo)")
    parser.add_argument("--prometheus-port", type=int, default=9090)
    parser.add_argument("--alertmanager-port", type=int, default=9093)
    parser.add_argument("--exporter-port", type=int, default=9877)
    parser.add_argument("--notifier-port", type=int, default=9878)
    parser.add_argument("--demo-target-port", type=int, default=9879)
    parser.add_argument("--down-seconds", type=float, default=240,
                        help="how long the demo target stays down in each cycle (default 240)")
    parser.add_argument("--up-seconds", type=float, default=360,
                        help="how long the demo target stays up in each cycle (default 360)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = StackConfig(
        run_dir=args.run_dir.resolve(), prometheus_port=args.prometheus_port,
        alertmanager_port=args.alertmanager_port, exporter_port=args.exporter_port,
        notifier_port=args.notifier_port, demo_target_port=args.demo_target_port)
    stack = Stack(config)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):  # Ctrl-C, or a service manager stopping us
        signal.signal(signum, lambda *_: stop.set())
    try:
        # Up for a minute (so the first scrapes see it healthy), then the down/up cycle.
        stack.start(demo_schedule=[(True, 60), (False, args.down_seconds), (True, args.up_seconds)])
    except StackError as exc:
        stack.stop()
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print("\nThe e-invoice monitoring chain is running:")
    for name, url in stack.urls().items():
        print(f"  {name:18} {url}")
    print(f"\nThe demo target {config.url(config.demo_target_port)}/actuator/health goes down 60 s after "
          f"start for {args.down_seconds:.0f} s, then recovers; watch the alert fire in Prometheus and "
          "Alertmanager, the ticket open in the console and the message in the messages file.")
    print(f"Logs: {config.run_dir / 'logs'}. Press Ctrl-C to stop.\n")
    while not stop.wait(1.0):
        for name, proc in stack.processes():
            if proc.poll() is not None:
                print(f"error: {name} exited with code {proc.returncode}:\n{stack.log_tail(name)}",
                      file=sys.stderr)
                stop.set()
    print("stopping...")
    stack.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
