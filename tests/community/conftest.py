from tests.collectors_net.conftest import pki  # noqa: F401 - the test CA of the network probes
from tests.collectors_net.test_blackbox_parity import site  # noqa: F401 - real nginx, HTTP and HTTPS
from tests.es.conftest import es_server  # noqa: F401 - the documented-responses Elasticsearch
from tests.kafka.conftest import broker  # noqa: F401 - tansu, the Kafka-protocol broker
from tests.redis.conftest import start_redis  # noqa: F401 - real redis-server fixture
