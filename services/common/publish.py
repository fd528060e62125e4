"""Publishing a batch of events to RabbitMQ with publisher confirms, waiting once per batch.

Nameko's Publisher (kombu's `confirm_publish`) waits for the broker's ack after every message,
so a relay publishing one event at a time is bound by one broker round trip per event. Here
the channel is put in confirm mode once and a whole batch is sent before waiting: RabbitMQ acks
by delivery tag, often many at once (`multiple`), and a message counts as published only once
its tag is acked.

What is sent is what Nameko's own EventDispatcher sends (kombu's JSON: content type
application/json, utf-8; persistent; priority 0; the same headers), so Nameko's event handlers
consume it unchanged. The body is the event's JSON as the outbox stores it, not decoded and
encoded again. A batch's frames, framed by py-amqp as `basic_publish` frames them, go to the
socket in one write: a write per message (and py-amqp's poll for a `connection.blocked` before
each one) was most of the relay's time."""
import time

from amqp import spec
from amqp.method_framing import frame_writer
from amqp.serialization import dumps
from kombu import Connection
from kombu.exceptions import OperationalError

PERSISTENT = 2
JSON = ("application/json", "utf-8")   # what kombu's json serializer names its output


class NotConfirmed(Exception):
    """The batch failed (a nack, no confirm in time, or the connection lost); `confirmed`
    messages from its start had been confirmed and need not be sent again."""

    def __init__(self, reason, confirmed=0):
        super().__init__(f"{reason} ({confirmed} confirmed before)")
        self.confirmed = confirmed


class _Frames:
    """Where a frame writer puts a batch's frames until they go to the socket at once."""

    def __init__(self):
        self.parts = []

    def write(self, frame):
        self.parts.append(bytes(frame))   # the writer hands a view of a buffer it reuses


class ConfirmedPublisher:
    """One connection and confirm-mode channel, opened on first use and dropped on any error
    (the next batch opens a new one, so a broker restart costs a batch, not the relay).

    `send` a batch, do something else while the broker routes and persists it (the relay
    claims its next batch), then `wait` for its confirms; or `publish` it, both at once."""

    def __init__(self, amqp_uri, exchange, confirm_timeout=30):
        self.amqp_uri, self.exchange, self.confirm_timeout = amqp_uri, exchange, confirm_timeout
        self.connection = self.channel = None
        self.sent, self.acked_through, self.acked_singly, self.refused = 0, 0, set(), None
        self.first = self.last = 0   # the delivery tags of the batch last sent

    def publish(self, messages):
        """Send `messages` and wait for their confirms (`send`, `wait`)."""
        if messages:
            self.send(messages)
            self.wait()

    def send(self, messages):
        """Send `messages` [(body, routing_key, headers)], each body an event's JSON text, in
        one write; their confirms are `wait`ed for. NotConfirmed (none of them) if the
        connection cannot be had or breaks."""
        try:
            self._open()
            self.first = self.sent + 1
            frames, channel = _Frames(), self.channel
            write = frame_writer(channel.connection, frames)
            exchange, arguments = self.exchange.name, {}
            for body, routing_key, headers in messages:
                if routing_key not in arguments:
                    arguments[routing_key] = dumps("Bssbb", (0, exchange, routing_key, False, False))
                message = channel.prepare_message(body, 0, *JSON, headers,
                                                  {"delivery_mode": PERSISTENT})
                write(1, channel.channel_id, spec.Basic.Publish, arguments[routing_key], message)
            self.sent = self.last = self.first + len(messages) - 1
            transport = channel.connection.transport
            with transport.having_timeout(self.confirm_timeout):   # a broker not reading: a
                transport.write(b"".join(frames.parts))             # failed batch, not a hang
        except Exception as exc:
            self.close()
            raise NotConfirmed(str(exc) or type(exc).__name__) from exc

    def wait(self):
        """Wait for the confirms of the batch last sent; NotConfirmed, with how many of it
        were confirmed from its start, unless each one is (the caller sends the rest again:
        receivers de-duplicate on the event id)."""
        if self.last < self.first:
            return
        try:
            self._wait_until_confirmed()
        except Exception as exc:
            confirmed = max(0, min(self._confirmed_through(), self.last) - self.first + 1)
            self.close()
            raise NotConfirmed(str(exc) or type(exc).__name__, confirmed) from exc

    def _open(self):
        if self.connection is not None:
            return
        self.connection = Connection(self.amqp_uri)
        self.channel = self.connection.channel()
        self.channel.confirm_select()
        self.channel.events["basic_ack"].add(self._on_ack)
        self.channel.events["basic_nack"].add(self._on_nack)
        # delivery tags count the messages published on the channel, from 1
        self.sent, self.acked_through, self.acked_singly, self.refused = 0, 0, set(), None
        self.first = self.last = 0
        self.exchange(self.channel).declare()

    def _on_ack(self, delivery_tag, multiple):
        if multiple:
            self.acked_through = max(self.acked_through, delivery_tag)
        else:
            self.acked_singly.add(delivery_tag)

    def _on_nack(self, delivery_tag, multiple):
        # what was confirmed when the first nack came; a later `multiple` ack may go past the
        # refused tags (they are no longer outstanding), but confirms none of them
        if self.refused is None:
            self.refused = self._confirmed_through()

    def _confirmed_through(self):
        """The highest tag up to which every message is confirmed."""
        while self.acked_through + 1 in self.acked_singly:
            self.acked_through += 1
        self.acked_singly = {tag for tag in self.acked_singly if tag > self.acked_through}
        if self.refused is not None:
            return min(self.acked_through, self.refused)
        return self.acked_through

    def _wait_until_confirmed(self):
        deadline = time.monotonic() + self.confirm_timeout
        while self._confirmed_through() < self.sent:
            if self.refused is not None:
                raise NotConfirmed(f"the broker refused message {self.refused + 1} or later")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise NotConfirmed(f"no confirm within {self.confirm_timeout} s")
            try:
                self.connection.drain_events(timeout=remaining)
            except TimeoutError:
                pass

    def close(self):
        connection, self.connection = self.connection, None
        self.channel = None
        if connection is not None:
            try:
                connection.release()
            except (OSError, OperationalError):
                pass
