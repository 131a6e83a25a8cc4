"""`einvoice-exporter`: flags in the style of Prometheus' own exporters, logs to stderr."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from types import FrameType

from .config import ConfigError, load_config

log = logging.getLogger("einvoice_exporter")

DEFAULT_LISTEN = ":9877"
_NOISY_LIBRARIES = ("kafka", "urllib3", "redis", "elastic_transport")
_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING, "error": logging.ERROR}


class LogfmtFormatter(logging.Formatter):
    """`ts=... level=info logger=... msg="..."`, as Prometheus' go-kit logs look."""

    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        ts += f".{int(record.msecs):03d}Z"
        level = {"WARNING": "warn", "CRITICAL": "error"}.get(record.levelname, record.levelname.lower())
        message = record.getMessage()
        if record.exc_info:
            message += "\n" + self.formatException(record.exc_info)
        return f"ts={ts} level={level} logger={record.name} msg={_quote(message)}"


def _quote(text: str) -> str:
    if text and not any(ch in text for ch in ' "=\n\t\\'):
        return text
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")
    return f'"{escaped}"'


def setup_logging(level: str, fmt: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "logfmt":
        handler.setFormatter(LogfmtFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(_LEVELS[level])
    # Client libraries narrate every connection at INFO (kafka-python) and log a dead target as an
    # ERROR; a failing target is already a metric with a reason, so only their warnings pass.
    for noisy in _NOISY_LIBRARIES:
        logging.getLogger(noisy).setLevel(max(_LEVELS[level], logging.WARNING))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="einvoice-exporter",
        description="Prometheus exporter for the Guangxi VAT e-invoice platform: runs the configured "
                    "checks and serves /metrics and /probe.")
    parser.add_argument("--config", "--config.file", dest="config", type=Path, required=True,
                        help="YAML file with modules and checks")
    parser.add_argument("--check-config", action="store_true",
                        help="validate the config file and exit (0 valid, 1 invalid) without starting")
    parser.add_argument("--file-sd", dest="file_sd", metavar="HOST:PORT", default=None,
                        help="print Prometheus file_sd JSON (one /probe?check= target per check, scraped "
                             "at this exporter address) and exit")
    parser.add_argument("--web.listen-address", dest="listen", default=DEFAULT_LISTEN,
                        help="HOST:PORT to listen on (default %(default)s)")
    parser.add_argument("--web.config.file", dest="web_config", type=Path, default=None,
                        help="exporter-toolkit web config (TLS, basic auth)")
    parser.add_argument("--web.enable-lifecycle", dest="lifecycle", action="store_true",
                        help="allow POST /-/reload")
    parser.add_argument("--log.level", dest="log_level", choices=list(_LEVELS), default="info")
    parser.add_argument("--log.format", dest="log_format", choices=["logfmt", "plain"], default="logfmt")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.log_level, args.log_format)

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print("\n".join(exc.lines), file=sys.stderr)
        if not args.check_config:
            log.error("invalid configuration file %s; not starting", args.config)
        return 1

    web = None
    if args.web_config is not None:
        from .webconfig import load_web_config

        try:
            web = load_web_config(args.web_config)
        except ConfigError as exc:
            print("\n".join(exc.lines), file=sys.stderr)
            return 1

    if args.file_sd is not None:
        from .coverage import file_sd

        sys.stdout.write(file_sd(config, args.file_sd))
        return 0

    if args.check_config:
        from .coverage import coverage, format_coverage

        print(f"config OK: {len(config.modules)} modules, {len(config.checks)} checks")
        print(format_coverage(coverage(config)))
        return 0

    from .runtime import Runtime
    from .server import App, make_server, parse_listen_address
    from .webconfig import WebConfig

    try:
        address = parse_listen_address(args.listen)
    except ValueError as exc:
        print(f"--web.listen-address: {exc}", file=sys.stderr)
        return 2

    try:
        runtime = Runtime(config, loader=partial(load_config, args.config), background=True)
    except Exception:
        log.exception("building the checks failed; not starting")
        return 1
    app = App(runtime, web or WebConfig(), enable_lifecycle=args.lifecycle, web_config_file=args.web_config)
    try:
        server = make_server(address, app)
    except OSError as exc:
        log.error("cannot listen on %s: %s", args.listen, exc)
        runtime.close()
        return 1

    def on_hup(_signum: int, _frame: FrameType | None) -> None:
        log.info("received SIGHUP, reloading %s", args.config)
        threading.Thread(target=app.reload, name="reload", daemon=True).start()

    def on_term(signum: int, _frame: FrameType | None) -> None:
        log.info("received %s, shutting down", signal.Signals(signum).name)
        threading.Thread(target=server.shutdown, name="shutdown", daemon=True).start()

    signal.signal(signal.SIGHUP, on_hup)
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)

    runtime.start()  # checks with an interval: refreshed in the background from now on
    host, port = server.server_address[:2]
    log.info("listening on %s:%s (tls=%s, basic_auth=%s, lifecycle=%s): %d modules, %d checks",
             host, port, app.security.ssl_context is not None, app.security.auth is not None,
             args.lifecycle, len(config.modules), len(config.checks))
    try:
        server.serve_forever(poll_interval=0.5)
    finally:
        server.server_close()
        runtime.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
