"""Password logins under attack (issue 10): throttled by source and by user, one throttle for the API
and the console, the real operator never locked out from a clean source, unknown names cost a
bcrypt check like known ones. The throttle's clock is injected: no test waits for a backoff."""

from __future__ import annotations

import base64
import statistics
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import bcrypt
import pytest
from einvoice_notifier import db
from einvoice_notifier.app import Notifier
from einvoice_notifier.auth import FREE_FAILURES, MAX_BACKOFF, USER_FAILURES, WINDOW, Authenticator, Throttled
from einvoice_notifier.settings import parse_settings

from tests.notifier.sources import ManualClock, session_from
from tests.notifier.support import RecordingChannel, ServedNotifier

PASSWORD = "correct horse 电池"


def _settings(rounds: int = 4) -> Any:
    digest = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=rounds)).decode()
    return parse_settings({
        "channels": [{"type": "console", "name": "robot", "stdout": False}],
        "routing": {"first_line": ["robot"], "second_line": ["robot"]},
        "users": [{"name": "oper", "password_hash": digest, "role": "operator"}],
        "console_secret_key": "throttle-test-secret-0123456789",
    })


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_a_source_gets_free_failures_then_exponential_backoff() -> None:
    clock = ManualClock()
    auth = Authenticator(_settings(), clock)
    for _ in range(FREE_FAILURES):
        assert auth.login("oper", "guess", "10.0.0.9") is None
    with pytest.raises(Throttled) as first:
        auth.login("oper", PASSWORD, "10.0.0.9")  # even the right password is not checked now
    assert first.value.retry_after == pytest.approx(2.0)
    waits = [first.value.retry_after]
    for _ in range(5):
        clock.advance(waits[-1])  # wait exactly what was asked, fail once more: the next wait doubles
        assert auth.login("oper", "guess", "10.0.0.9") is None
        with pytest.raises(Throttled) as info:
            auth.login("oper", "guess", "10.0.0.9")
        waits.append(info.value.retry_after)
    assert waits == pytest.approx([2.0, 4.0, 8.0, 16.0, 32.0, 64.0])
    clock.advance(WINDOW + 1)  # old failures age out of the window
    assert auth.login("oper", PASSWORD, "10.0.0.9") is not None


def test_the_operator_is_not_locked_out_by_an_attack_from_many_sources() -> None:
    clock = ManualClock()
    auth = Authenticator(_settings(), clock)
    attackers = [f"10.9.0.{i}" for i in range(USER_FAILURES + 5)]
    for source in attackers:
        assert auth.login("oper", "guess", source) is None
    # Under attack: a source that failed for this user is refused unchecked, even with the password.
    with pytest.raises(Throttled):
        auth.login("oper", PASSWORD, attackers[0])
    # The operator's own workstation has no failures: checked as usual, and a success ends it.
    assert auth.login("oper", PASSWORD, "10.45.1.20") is not None
    assert auth.login("oper", PASSWORD, attackers[0]) is not None


def test_state_is_bounded_for_made_up_names_and_addresses() -> None:
    auth = Authenticator(_settings(), ManualClock())
    for i in range(200):
        assert auth.login(f"made-up-{i}", "x", f"10.1.{i // 250}.{i % 250}") is None
    assert auth.throttle._by_user == {}  # per-user state only for configured users


def test_unknown_users_cost_a_bcrypt_check_like_known_ones() -> None:
    auth = Authenticator(_settings(rounds=10), ManualClock())  # ≈ 50 ms a check: above the noise

    def seconds(user: str, source: str) -> float:
        # CPU time of this thread, not wall time: a bcrypt check is CPU work in the calling thread,
        # and other processes loading the machine do not inflate it.
        start = time.thread_time()
        assert auth.login(user, "wrong password", source) is None
        return time.thread_time() - start

    known = [seconds("oper", f"10.2.0.{i}") for i in range(5)]
    unknown = [seconds(f"nobody{i}", f"10.3.0.{i}") for i in range(5)]
    ratio = statistics.median(unknown) / statistics.median(known)
    assert 0.33 < ratio < 3, f"unknown/known time ratio {ratio:.2f} (without the decoy check: ≈ 0.01)"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[ServedNotifier, ManualClock]]:
    clock = ManualClock()
    notifier = Notifier(_settings(), db.make_engine(f"sqlite:///{tmp_path / 'n.db'}"),
                        channels={"robot": RecordingChannel("robot")}, webhook_token="t" * 24,
                        monotonic=clock)
    with ServedNotifier(notifier) as server:
        yield server, clock
    notifier.engine.dispose()


def test_api_guessing_is_throttled_and_locks_the_console_for_that_source_only(
        served: tuple[ServedNotifier, ManualClock]) -> None:
    server, clock = served
    attacker = session_from("127.0.0.41")
    url = f"{server.url}/api/v1/tickets"
    codes = [attacker.get(url, headers={"Authorization": _basic("oper", f"guess{i}")}, timeout=10).status_code
             for i in range(30)]
    assert codes[:FREE_FAILURES] == [401] * FREE_FAILURES
    assert set(codes[FREE_FAILURES:]) == {429}
    right = attacker.get(url, headers={"Authorization": _basic("oper", PASSWORD)}, timeout=10)
    assert right.status_code == 429 and int(right.headers["Retry-After"]) >= 1
    # The console shares the throttle: the attacker's address cannot try there either.
    form = attacker.get(f"{server.url}/console/login", timeout=10)
    csrf = form.text.split('name="csrf" value="')[1].split('"')[0]
    console = attacker.post(f"{server.url}/console/login", allow_redirects=False, timeout=10,
                            data={"username": "oper", "password": PASSWORD, "csrf": csrf})
    assert console.status_code == 429 and "登录失败次数过多" in console.text
    # The operator, from another address, is not locked out, on the API or in the console.
    operator = session_from("127.0.0.42")
    as_operator = {"Authorization": _basic("oper", PASSWORD)}
    assert operator.get(url, headers=as_operator, timeout=10).status_code == 200
    clock.advance(MAX_BACKOFF)  # the backoff has passed: the attacker's next guess is checked again
    guess = {"Authorization": _basic("oper", "guess")}
    assert attacker.get(url, headers=guess, timeout=10).status_code == 401


def test_a_cached_password_does_not_bypass_the_throttle(served: tuple[ServedNotifier, ManualClock]) -> None:
    server, _clock = served
    url = f"{server.url}/api/v1/tickets"
    script = session_from("127.0.0.43")
    assert script.get(url, headers={"Authorization": _basic("oper", PASSWORD)}, timeout=10).status_code == 200
    attacker = session_from("127.0.0.44")
    for i in range(FREE_FAILURES):
        attacker.get(url, headers={"Authorization": _basic("oper", f"guess{i}")}, timeout=10)
    # The right password is known to the cache, but a throttled source learns nothing from it.
    assert attacker.get(url, headers={"Authorization": _basic("oper", PASSWORD)},
                        timeout=10).status_code == 429
    assert script.get(url, headers={"Authorization": _basic("oper", PASSWORD)}, timeout=10).status_code == 200
