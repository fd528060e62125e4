"""Delivery providers: `deliver(message) -> status`. The store-only provider (development, and
every staff message, whose inbox is the list itself) keeps the stored row as the message; SMTP and
HTTP providers slot in beside it, named per channel under NOTIFICATIONS in config.yml."""
from nameko.extensions import DependencyProvider

from services.notifications.domain import CHANNELS


class StoreOnly:
    def deliver(self, message):
        return "sent"


PROVIDERS = {"store": StoreOnly}


class Delivery:
    def __init__(self, by_channel):
        self.by_channel = by_channel

    def deliver(self, message):
        return self.by_channel[message.channel].deliver(message)


def delivery_from(settings):
    """Each channel's provider as `<channel>_provider` names it (store-only when unnamed); an
    unknown name stops the service at start-up rather than at its first message."""
    def provider(channel):
        name = settings.get(f"{channel}_provider") or "store"
        if name not in PROVIDERS:
            raise ValueError(f"unknown {channel} provider {name!r}; known: {', '.join(PROVIDERS)}")
        return PROVIDERS[name]()
    return Delivery({channel: provider(channel) for channel in CHANNELS})


class Providers(DependencyProvider):
    """`self.delivery.deliver(message)` in the service."""

    def setup(self):
        self.delivery = delivery_from(self.container.config.get("NOTIFICATIONS") or {})

    def get_dependency(self, worker_ctx):
        return self.delivery
