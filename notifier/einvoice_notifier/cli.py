"""`einvoice-notifier [--config FILE] [--check-config]`: serve the webhook, API, console, metrics."""

from __future__ import annotations

import argparse
import gc
import logging
import sys
from pathlib import Path

from .settings import ConfigError, Settings, load_settings

log = logging.getLogger("einvoice_notifier")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="einvoice-notifier",
        description="Alertmanager webhook receiver: tickets with SLA timers and WeChat Work messages.")
    parser.add_argument("--config", type=Path, default=None,
                        help="YAML settings file (default: embedded defaults, SQLite in ./var)")
    parser.add_argument("--check-config", action="store_true",
                        help="validate the settings and the calendar file, then exit")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    return parser


def check(settings: Settings) -> None:
    """Everything that can be validated without starting: calendar file, channels' configs."""
    from .calendar import load_calendar_data

    try:
        load_calendar_data(settings.calendar_file)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"calendar_file {settings.calendar_file}: {exc}") from None


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = load_settings(args.config)
        check(settings)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    if args.check_config:
        print(f"config OK: {len(settings.channels)} channel(s), {len(settings.users)} user(s)")
        return 0
    return serve(settings, args.log_level)


def serve(settings: Settings, log_level: str = "info") -> int:
    import uvicorn

    from .app import Notifier, create_app

    if settings.resolved_database_url().startswith("sqlite:///"):
        Path(settings.resolved_database_url().removeprefix("sqlite:///")).parent.mkdir(
            parents=True, exist_ok=True)
    notifier = Notifier(settings)
    if notifier.token_generated:
        # Printed once, on purpose: the demo runs without any configured token.
        print("einvoice-notifier: no webhook token configured; generated dev token: "
              f"{notifier.webhook_token}", file=sys.stderr, flush=True)
    if settings.configured_console_secret() is None:
        log.warning("no console_secret_key configured: a random one is used, links and sessions "
                    "stop working on restart")
    log.info("listening on %s, database %s", settings.listen, notifier.engine.url.render_as_string(
        hide_password=True))
    app = create_app(notifier)
    # The imported modules are long-lived: keep them out of the collector's full passes, which
    # otherwise walk them all and show as latency spikes on the webhook.
    gc.freeze()
    uvicorn.run(app, host=settings.host, port=settings.port, log_level=log_level, access_log=False,
                timeout_graceful_shutdown=10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
