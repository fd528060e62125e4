"""Publisher confirms counted by delivery tag: a batch is published once every tag in it is
acked, whether the broker acks one at a time, several at once (`multiple`), or out of order,
and none from the first nack on."""
from services.common.publish import ConfirmedPublisher


def publisher_having_sent(count):
    publisher = ConfirmedPublisher("pyamqp://unused", exchange=None)
    publisher.sent = count
    return publisher


def test_a_multiple_ack_confirms_every_tag_up_to_it():
    publisher = publisher_having_sent(200)
    publisher._on_ack(150, multiple=True)
    assert publisher._confirmed_through() == 150
    publisher._on_ack(200, multiple=True)
    assert publisher._confirmed_through() == 200


def test_single_acks_out_of_order_confirm_only_the_unbroken_run_from_the_first():
    publisher = publisher_having_sent(5)
    for tag in (1, 2, 4, 5):
        publisher._on_ack(tag, multiple=False)
    assert publisher._confirmed_through() == 2      # 3 is not confirmed: 4 and 5 must wait
    publisher._on_ack(3, multiple=False)
    assert publisher._confirmed_through() == 5


def test_an_empty_batch_needs_no_broker():
    assert publisher_having_sent(0).publish([]) is None


def test_a_nack_caps_what_counts_as_confirmed_even_past_a_later_multiple_ack():
    publisher = publisher_having_sent(5)
    publisher._on_ack(2, multiple=True)
    publisher._on_nack(4, multiple=True)     # 3 and 4 refused
    publisher._on_ack(5, multiple=True)      # covers what is still outstanding: 5 only
    assert publisher._confirmed_through() == 2
