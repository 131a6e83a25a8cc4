"""Side by side: our `logfile` scanner and Debian's mtail 3.0 on the same generated syslog.

A 2-million-line syslog (about 170 MB) where about 1 % of the lines match one of 10 patterns of the
library (`os` set). Counts must equal mtail's and `grep -E -c`'s for every pattern. Printed: wall
time, lines per second, peak RSS of each (each runs in its own process, RSS from wait4), the ratio,
where our time goes (reading, newline counting, the Hyperscan pass, Python on the matching lines),
and the idle cost of following 200 mostly idle files (CPU seconds per second of polling).

    .venv/bin/python benchmarks/logs_vs_mtail.py [--lines 2000000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "exporters"))

from einvoice_exporter.collectors.logs.library import library

PATTERNS = ["oom_kill", "blk_io_error", "ext4_error", "xfs_error", "segfault", "sshd_failed",
            "pam_failure", "hung_task", "nfs_not_responding", "no_space"]
SAMPLES = {
    "oom_kill": "kernel: [{n}.1] Out of memory: Killed process {n} (java) total-vm:8388608kB",
    "blk_io_error": "kernel: [{n}.1] blk_update_request: I/O error, dev sdb, sector {n} op 0x0:(READ)",
    "ext4_error": "kernel: [{n}.2] EXT4-fs error (device sda1): ext4_find_entry:1455: inode #{n}",
    "xfs_error": "kernel: [{n}.3] XFS (dm-0): metadata I/O error in xfs_trans_read_buf_map at 0x{n}",
    "segfault": "kernel: [{n}.4] java[{n}]: segfault at 0000000000000008 ip 00007f sp 00007ffd error 4",
    "sshd_failed": "sshd[{n}]: Failed password for invalid user admin from 198.51.100.{m} port {n} ssh2",
    "pam_failure": "sudo: pam_unix(sudo:auth): authentication failure; logname=ops uid=1000",
    "hung_task": "kernel: [{n}.5] INFO: task kworker/0:1:{n} blocked for more than 120 seconds.",
    "nfs_not_responding": "kernel: [{n}.6] nfs: server nfs01 not responding, still trying",
    "no_space": "intake[{n}]: write /data/spool/{n}.xml failed: No space left on device",
}
NOISE = [
    "systemd[1]: Started Session {n} of user ops.",
    "CRON[{n}]: (root) CMD (command -v debian-sa1 > /dev/null && debian-sa1 1 1)",
    "intake[2231]: INFO handled in {m} ms status=200 path=/api/v1/invoice/verify",
    "kernel: [{n}.7] eth0: link becomes ready",
    "rsyslogd: imuxsock: Acquired UNIX socket (fd 3) from systemd.",
]


def generate(path: Path, lines: int, seed: int = 11) -> None:
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8") as handle:
        for i in range(lines):
            stamp = f"Dec  6 {i // 3600 % 24:02d}:{i // 60 % 60:02d}:{i % 60:02d} web01 "
            template = SAMPLES[PATTERNS[i % 10]] if rng.random() < 0.01 else NOISE[i % len(NOISE)]
            handle.write(stamp + template.format(n=i, m=i % 251) + "\n")


def mtail_program(patterns: dict[str, str]) -> str:
    out = []
    for name, regex in patterns.items():
        out.append(f"counter {name}\n/{regex.replace('/', chr(92) + '/')}/ {{\n  {name}++\n}}\n")
    return "\n".join(out)


def timed_child(argv: list[str], stdout: int | None = subprocess.PIPE) -> tuple[float, int, bytes]:
    """Wall seconds, peak RSS bytes (wait4) and stdout of a child process."""
    started = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=stdout, stderr=subprocess.DEVNULL)
    out = proc.stdout.read() if proc.stdout else b""
    _pid, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{argv[0]} failed")
    return wall, usage.ru_maxrss * 1024, out


OURS = r"""
import json, sys, time
from einvoice_exporter.collectors import logfile
settings = logfile.Settings(pattern_sets=[], patterns=[p for p in json.loads(sys.argv[2])], from_start=True)
check = logfile.Collector(settings)
check.run(sys.argv[1], 3600)  # the first run registers the file (its counters at 0); reading starts next
started = time.perf_counter()
outcome = check.run(sys.argv[1], 3600)
wall = time.perf_counter() - started
counts = {}
for name, _t, _d, samples in outcome.metrics.items():
    if name == "einvoice_log_matches_total":
        for labels, value in samples:
            counts[labels["pattern"]] = counts.get(labels["pattern"], 0) + int(value)
print(json.dumps({"counts": counts, "wall": wall, "engine": check.matcher.engine,
                  "lines": outcome.metrics.value("einvoice_log_lines_total", {"source": sys.argv[1]})}))
"""


def breakdown(path: Path, patterns: list) -> dict[str, float]:
    """Where our time goes: each stage alone over the same 1 MiB reads."""
    from einvoice_exporter.collectors.logs.engine import Matcher

    matcher = Matcher(patterns)
    stages: dict[str, float] = {}
    chunk = 1024 * 1024

    def run(stage: str, work) -> None:
        started = time.perf_counter()
        with path.open("rb", buffering=0) as handle:
            buffer = bytearray(chunk)
            while True:
                filled = handle.readinto(buffer)
                if not filled:
                    break
                work(bytes(buffer[:filled]))
        stages[stage] = time.perf_counter() - started

    run("read (1 MiB readinto + copy)", lambda b: None)
    run("read + count newlines", lambda b: b.count(b"\n"))
    db = matcher._db
    if db is not None:
        def bare(buffer: bytes) -> None:
            db.scan(buffer, match_event_handler=lambda *a: None)
        run("read + hyperscan pass (no callback work)", bare)
    run("read + full scan (candidates confirmed in Python)", matcher.scan)
    return stages


def idle_cost(directory: Path, files: int, polls: int) -> tuple[float, float]:
    from einvoice_exporter.collectors import logfile

    for i in range(files):
        (directory / f"app{i:03d}.log").write_text("Dec  6 00:00:00 host app: started\n")
    check = logfile.Collector(logfile.Settings(state_file=directory / "state.json"))
    target = str(directory / "*.log")
    check.run(target, 30)
    busy = directory / "app000.log"
    started = time.process_time()
    for i in range(polls):
        if i % 10 == 0:  # one file of the 200 gets a line now and then
            with busy.open("a") as handle:
                handle.write("Dec  6 00:00:01 host app: still alive\n")
        check.run(target, 30)
    return (time.process_time() - started) / polls, float(len(check._targets[target].follower.positions))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=2_000_000)
    parser.add_argument("--keep", type=Path)
    args = parser.parse_args()
    mtail = shutil.which("mtail")
    if mtail is None:
        sys.exit("apt-get install mtail")
    root = args.keep or Path(tempfile.mkdtemp(prefix="logbench-"))
    root.mkdir(parents=True, exist_ok=True)
    log = root / "syslog"
    if not log.exists():
        generate(log, args.lines)
    size = log.stat().st_size
    by_name = {p.name: p for p in library()["os"]}
    chosen = {name: by_name[name].regex for name in PATTERNS}
    print(f"file: {log} {args.lines} lines, {size / 1e6:.0f} MB, {len(chosen)} patterns")

    env_grep = {**os.environ, "LC_ALL": "C"}
    grep = {}
    for name, regex in chosen.items():
        done = subprocess.run(["grep", "-E", "-c", regex, str(log)], capture_output=True, env=env_grep,
                              check=False)
        grep[name] = int(done.stdout or 0)

    progs = root / "progs"
    progs.mkdir(exist_ok=True)
    (progs / "os.mtail").write_text(mtail_program(chosen))
    m_wall, m_rss, m_out = timed_child([mtail, "--progs", str(progs), "--logs", str(log),
                                        "--one_shot", "--one_shot_format", "json", "--logtostderr"])
    m_counts: dict[str, int] = {}
    for name, metrics in json.loads(m_out).items():
        for metric in metrics if isinstance(metrics, list) else [metrics]:
            values = metric.get("LabelValues", [])
            m_counts[name] = int(sum(v.get("Value", {}).get("Value", 0) for v in values))

    env = {**os.environ, "PYTHONPATH": f"{Path(__file__).resolve().parents[1] / 'exporters'}:"
           f"{Path(__file__).resolve().parents[1]}"}
    patterns_json = json.dumps([by_name[n].model_dump(by_alias=True) for n in PATTERNS])
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", OURS, str(log), patterns_json], stdout=subprocess.PIPE,
                            env=env)
    o_out = proc.stdout.read() if proc.stdout else b""
    _pid, _status, usage = os.wait4(proc.pid, 0)
    o_process_wall = time.perf_counter() - started
    o_rss = usage.ru_maxrss * 1024
    ours = json.loads(o_out)
    o_wall = ours["wall"]

    print(f"\n{'pattern':<20}{'grep -c':>10}{'mtail':>10}{'ours':>10}")
    equal = True
    for name in PATTERNS:
        row = (grep[name], m_counts.get(name, -1), ours["counts"].get(name, -1))
        equal &= row[0] == row[1] == row[2]
        print(f"{name:<20}{row[0]:>10}{row[1]:>10}{row[2]:>10}")
    print(f"counts equal: {equal}; lines read by ours: {int(ours['lines'])}; engine: {ours['engine']}")
    print(f"\n{'':<26}{'wall s':>10}{'lines/s':>14}{'peak RSS MB':>14}")
    print(f"{'mtail 3.0 (one_shot)':<26}{m_wall:>10.2f}{args.lines / m_wall:>14,.0f}{m_rss / 1e6:>14.1f}")
    print(f"{'ours (scan only)':<26}{o_wall:>10.2f}{args.lines / o_wall:>14,.0f}{o_rss / 1e6:>14.1f}")
    print(f"{'ours (with Python start)':<26}{o_process_wall:>10.2f}{args.lines / o_process_wall:>14,.0f}")
    print(f"ratio lines/s ours/mtail: {m_wall / o_wall:.1f}x (scan), {m_wall / o_process_wall:.1f}x "
          f"(with Python start-up); RSS ours/mtail: {o_rss / m_rss:.2f}")

    print("\nwhere our time goes (one pass over the file per line; the differences are the stage costs):")
    for stage, seconds in breakdown(log, [by_name[n] for n in PATTERNS]).items():
        print(f"  {stage:<52}{seconds:>7.3f} s")

    idle_dir = root / "idle"
    idle_dir.mkdir(exist_ok=True)
    per_poll, followed = idle_cost(idle_dir, 200, 200)
    print(f"\nidle: {followed:.0f} files followed, {per_poll * 1000:.2f} ms CPU per poll -> "
          f"{per_poll:.4f} CPU s/s polling every second, {per_poll / 15:.5f} CPU s/s at a 15 s scrape")
    if not args.keep:
        shutil.rmtree(root)
    print(f"(ru_maxrss self {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3:.0f} MB)")


if __name__ == "__main__":
    main()
