"""Run einvoice-exporter's CLI under cProfile in every thread (CPU time per thread), and write the
merged profile when it exits (SIGTERM). Used by blackbox_compare.py to show where a /probe's CPU
goes; profiling slows the process down, so its numbers are shares, not the benchmark's timings.

    python benchmarks/blackbox_profile_exporter.py OUT.prof --config FILE --web.listen-address ADDR
"""

from __future__ import annotations

import cProfile
import marshal
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any

_profiles: list[cProfile.Profile] = []
_lock = threading.Lock()


def _start_in_thread(_frame: FrameType, _event: str, _arg: Any) -> None:
    """threading.setprofile hook: the first event of a new thread swaps in a profiler of its own."""
    profile = cProfile.Profile(time.thread_time)
    with _lock:
        _profiles.append(profile)
    profile.enable()


def main() -> int:
    out = Path(sys.argv[1])
    from einvoice_exporter.cli import main as exporter_main

    threading.setprofile(_start_in_thread)
    main_profile = cProfile.Profile(time.thread_time)
    _profiles.append(main_profile)
    main_profile.enable()
    try:
        code = exporter_main(sys.argv[2:])
    finally:
        main_profile.disable()
        threading.setprofile(None)  # type: ignore[arg-type]
        merged: dict[Any, Any] = {}
        with _lock:
            for profile in _profiles:
                profile.create_stats()
                for key, (cc, nc, tt, ct, callers) in profile.stats.items():  # type: ignore[attr-defined]
                    if key in merged:
                        pcc, pnc, ptt, pct, pcallers = merged[key]
                        for caller, value in callers.items():
                            pcallers[caller] = value
                        merged[key] = (pcc + cc, pnc + nc, ptt + tt, pct + ct, pcallers)
                    else:
                        merged[key] = (cc, nc, tt, ct, dict(callers))
        out.write_bytes(marshal.dumps(merged))
    return code


if __name__ == "__main__":
    sys.exit(main())
