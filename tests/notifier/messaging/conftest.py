from __future__ import annotations

import pytest

from tests.notifier.messaging.fake_wecom import FakeClock, FakeWeCom


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def wecom(clock):
    server = FakeWeCom(keys=("robot-key-1", "robot-key-2"), clock=clock).start()
    yield server
    server.stop()
