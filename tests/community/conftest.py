from tests.es.conftest import es_server  # noqa: F401 - the documented-responses Elasticsearch
from tests.redis.conftest import start_redis  # noqa: F401 - real redis-server fixture
