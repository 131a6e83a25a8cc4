"""Small pieces of the CLI: listen addresses, logfmt, and that validating imports no client library."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest
from einvoice_exporter.cli import LogfmtFormatter
from einvoice_exporter.server import parse_listen_address


@pytest.mark.parametrize(("text", "expected"), [
    (":9877", ("0.0.0.0", 9877)),
    ("127.0.0.1:9877", ("127.0.0.1", 9877)),
    ("[::1]:9877", ("::1", 9877)),
    ("exporter.example:9877", ("exporter.example", 9877)),
])
def test_listen_address(text: str, expected: tuple[str, int]):
    assert parse_listen_address(text) == expected


@pytest.mark.parametrize("text", ["9877", "host:", "host:99999", "host:port"])
def test_bad_listen_address(text: str):
    with pytest.raises(ValueError, match="must look like HOST:PORT"):
        parse_listen_address(text)


def test_logfmt_quotes_and_escapes():
    record = logging.LogRecord("einvoice_exporter.runtime", logging.WARNING, __file__, 1,
                               'reload failed:\nfile.yml: key "x"', None, None)
    line = LogfmtFormatter().format(record)
    assert line.startswith("ts=")
    assert ' level=warn logger=einvoice_exporter.runtime msg="reload failed:\\nfile.yml: key \\"x\\""' in line
    assert "\n" not in line


def test_validating_a_config_imports_no_client_library():
    code = (
        "import sys\n"
        "from einvoice_exporter.cli import main\n"
        "from einvoice_exporter.config import parse_config\n"
        "parse_config('modules: {r: {kind: redis}, c: {kind: redis_cluster}, k: {kind: kafka},"
        " e: {kind: elasticsearch}, h: {kind: http}, d: {kind: dns}}\\n', 'x.yml', {})\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'redis', 'kafka', 'elasticsearch',"
        " 'bcrypt', 'pymysql', 'oracledb', 'requests'}))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                            check=True)
    assert result.stdout.strip() == "[]"
