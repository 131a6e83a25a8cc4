from tests.redis.conftest import start_redis  # noqa: F401 - real redis-server fixture
