"""`python -m einvoice_stack`: run the whole chain locally until Ctrl-C."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from .stack import PORTS, REPO, Stack, StackConfig, StackError

FIRST_DOWN_AFTER = 60.0
"""Seconds the demo target is up at start, so the first scrapes see it healthy."""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m einvoice_stack", description=__doc__)
    parser.add_argument("--run-dir", type=Path, default=REPO / "var" / "demo",
                        help="where rendered configs, data and logs go (default: var/demo)")
    for spec in PORTS:
        parser.add_argument(spec.option, type=int, default=None, dest=spec.field,
                            help=f"default {spec.default}; when that is taken another port is used "
                                 "(a port given here must be free)")
    parser.add_argument("--down-seconds", type=float, default=240,
                        help="how long the demo target stays down in each cycle (default 240)")
    parser.add_argument("--up-seconds", type=float, default=360,
                        help="how long the demo target stays up between outages after the first "
                             f"{FIRST_DOWN_AFTER:.0f} s (default 360)")
    parser.add_argument("--keep-data", action="store_true",
                        help="keep the series, tickets and logs of the previous run (default: start fresh)")
    return parser.parse_args(argv)


def story(config: StackConfig, down: float, up: float) -> str:
    """What the newcomer will see, in order (the README's demo paragraph says the same)."""
    period = FIRST_DOWN_AFTER + down + up
    target = f"{config.url(config.demo_target_port)}/actuator/health"
    return (
        f"The demo target {target} (check demo-processing-health, item 10, service processing) goes "
        f"down {FIRST_DOWN_AFTER:.0f} s after start for {down:.0f} s, and again every {period:.0f} s. "
        "About a minute into each outage the EinvoiceServiceOutage alert for processing fires, a ticket "
        "opens in the console and its card (failing check, target, reason) is written to the messages "
        "file; when the target is back the alert resolves, the ticket moves to resolved and a recovery "
        "card follows.\n"
        "The check closed-port (item 20, warning) fails on purpose: after about 6 minutes it opens one "
        "general ticket, which stays open until you close it in the console. Alerts that open no "
        "ticket in the demo (routed to a receiver without channel): " + ", ".join(config.quiet_alerts)
        + " (see README)."
        + ("\nThe data checks of items 14 and 16-19 (push backlog, source and target counts, scheduled "
           "jobs, business volume, sync queue; GoldenGate through a ggsci stand-in) read a MariaDB the "
           "demo started, with a read-only account: healthy, on the 数据管道 board."
           if config.data_checks else ""))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asked: dict[str, int | None] = {spec.field: getattr(args, spec.field) for spec in PORTS}
    ports: dict[str, Any] = {spec.field: asked[spec.field] or spec.default for spec in PORTS}
    movable = frozenset(spec.name for spec in PORTS if asked[spec.field] is None)
    config = StackConfig(run_dir=args.run_dir.resolve(), movable_ports=movable, keep_data=args.keep_data,
                         **ports)
    stack = Stack(config)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):  # Ctrl-C, or a service manager stopping us
        signal.signal(signum, lambda *_: stop.set())
    try:
        # Up for a minute (so the first scrapes see it healthy), then the down/up cycle.
        stack.start(demo_schedule=[(True, FIRST_DOWN_AFTER), (False, args.down_seconds),
                                   (True, args.up_seconds)])
    except StackError as exc:
        stack.stop()
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print("\nThe e-invoice monitoring chain is running:")
    for note in stack.port_notes:
        print(f"  note: {note}")
    for name, url in stack.urls().items():
        print(f"  {name:18} {url}")
    print("\n" + story(stack.config, args.down_seconds, args.up_seconds))
    print(f"Logs: {config.run_dir / 'logs'}. Press Ctrl-C to stop.\n", flush=True)
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
