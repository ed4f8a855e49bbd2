"""Bus on Pub/Sub: one topic per stage, message JSON as data, jobId and stage as attributes."""

from __future__ import annotations

from google.cloud import pubsub_v1  # type: ignore[attr-defined]

from common import topology
from common.errors import TransientError
from common.schemas import StageMessage

PUBLISH_TIMEOUT_S = 30.0
# Every publish is waited for before the step goes on, so a batch never gathers a second
# message: send each at once instead of after the client's default 10 ms batching delay.
UNBATCHED = pubsub_v1.types.BatchSettings(max_messages=1)


def publisher() -> pubsub_v1.PublisherClient:
    """A publisher client that sends each message as it is published."""
    return pubsub_v1.PublisherClient(batch_settings=UNBATCHED)


def topic_for(stage: str) -> str:
    """The topic that feeds `stage`, as `infra/topology.toml` declares it."""
    return topology.load().function(stage).topic


class PubSubBus:
    def __init__(
        self,
        publisher: pubsub_v1.PublisherClient,
        project: str,
        *,
        timeout_s: float = PUBLISH_TIMEOUT_S,
    ) -> None:
        self._publisher = publisher
        self._project = project
        # Read the declaration now: a missing file fails the instance at start, not a message.
        topology.load()
        self._timeout_s = timeout_s

    def topic_path(self, stage: str) -> str:
        path: str = self._publisher.topic_path(self._project, topic_for(stage))
        return path

    def publish(self, message: StageMessage) -> None:
        topic = self.topic_path(message.stage)
        data = message.model_dump_json(by_alias=True, exclude_none=True).encode()
        future = self._publisher.publish(topic, data, jobId=message.job_id, stage=message.stage)
        try:
            # Wait: the caller records its step only once the next hop is surely sent.
            future.result(timeout=self._timeout_s)
        except Exception as exc:
            raise TransientError(
                f"publishing {message.stage} for job {message.job_id} to {topic} failed: {exc}"
            ) from exc
