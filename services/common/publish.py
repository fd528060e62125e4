"""Publishing a batch of events to RabbitMQ with publisher confirms, waiting once per batch.

Nameko's Publisher (kombu's `confirm_publish`) waits for the broker's ack after every message,
so a relay publishing one event at a time is bound by one broker round trip per event. Here
the channel is put in confirm mode once and a whole batch is sent before waiting: RabbitMQ acks
by delivery tag, often many at once (`multiple`), and a message counts as published only once
its tag is acked. What is sent is what Nameko's own EventDispatcher sends (JSON, persistent,
the same headers), so Nameko's event handlers consume it unchanged."""
import time

from kombu import Connection, Producer
from kombu.exceptions import OperationalError

PERSISTENT = 2


class NotConfirmed(Exception):
    """The batch failed (a nack, no confirm in time, or the connection lost); `confirmed`
    messages from its start had been confirmed and need not be sent again."""

    def __init__(self, reason, confirmed=0):
        super().__init__(f"{reason} ({confirmed} confirmed before)")
        self.confirmed = confirmed


class ConfirmedPublisher:
    """One connection and confirm-mode channel, opened on first use and dropped on any error
    (the next batch opens a new one, so a broker restart costs a batch, not the relay)."""

    def __init__(self, amqp_uri, exchange, confirm_timeout=30):
        self.amqp_uri, self.exchange, self.confirm_timeout = amqp_uri, exchange, confirm_timeout
        self.connection = self.channel = self.producer = None
        self.sent, self.acked_through, self.acked_singly, self.nacked = 0, 0, set(), None

    def publish(self, messages):
        """Send `messages` [(body, routing_key, headers)] and wait for their confirms; raises
        NotConfirmed unless every one is confirmed (the caller sends the rest again: receivers
        de-duplicate on the event id)."""
        if not messages:
            return
        first = None
        try:
            self._open()
            first = self.sent + 1
            for body, routing_key, headers in messages:
                self.producer.publish(body, routing_key=routing_key, headers=headers,
                                      delivery_mode=PERSISTENT, serializer="json", retry=False)
                self.sent += 1
            self._wait_until_confirmed()
        except Exception as exc:
            confirmed = 0 if first is None else max(0, self._confirmed_through() - first + 1)
            self.close()
            raise NotConfirmed(str(exc) or type(exc).__name__, min(confirmed, len(messages))) from exc

    def _open(self):
        if self.connection is not None:
            return
        self.connection = Connection(self.amqp_uri)
        self.channel = self.connection.channel()
        self.channel.confirm_select()
        self.channel.events["basic_ack"].add(self._on_ack)
        self.channel.events["basic_nack"].add(self._on_nack)
        # delivery tags count the messages published on the channel, from 1
        self.sent, self.acked_through, self.acked_singly, self.nacked = 0, 0, set(), None
        self.producer = Producer(self.channel, exchange=self.exchange, auto_declare=True)

    def _on_ack(self, delivery_tag, multiple):
        if multiple:
            self.acked_through = max(self.acked_through, delivery_tag)
        else:
            self.acked_singly.add(delivery_tag)

    def _on_nack(self, delivery_tag, multiple):
        self.nacked = delivery_tag

    def _confirmed_through(self):
        """The highest tag up to which every message is confirmed."""
        while self.acked_through + 1 in self.acked_singly:
            self.acked_through += 1
        self.acked_singly = {tag for tag in self.acked_singly if tag > self.acked_through}
        return self.acked_through

    def _wait_until_confirmed(self):
        deadline = time.monotonic() + self.confirm_timeout
        while self._confirmed_through() < self.sent:
            if self.nacked is not None:
                raise NotConfirmed(f"the broker refused message {self.nacked}")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise NotConfirmed(f"no confirm within {self.confirm_timeout} s")
            try:
                self.connection.drain_events(timeout=remaining)
            except TimeoutError:
                pass

    def close(self):
        connection, self.connection = self.connection, None
        self.channel = self.producer = None
        if connection is not None:
            try:
                connection.release()
            except (OSError, OperationalError):
                pass
