"""Delivery providers: `deliver(message) -> status`. The store-only provider (development, and
every staff message, whose inbox is the list itself) keeps the stored row as the message; SMTP and
HTTP providers slot in beside it, named per channel under NOTIFICATIONS in config.yml."""
import json
import smtplib
from email.message import EmailMessage
from urllib.parse import urlsplit

import requests
import urllib3
from nameko.extensions import DependencyProvider

from services.notifications.domain import CHANNELS, QUIET_HOURS, quiet_hours


class DeliveryFailed(Exception):
    """The provider did not take the message; the delivery sweep tries again later."""


class StoreOnly:
    # Nothing leaves the building, so quiet hours have nothing to hold back.
    sends_out = False

    def __init__(self, settings=None):
        pass

    def deliver(self, message):
        return "sent"


class HttpSms:
    """POSTs {id, to, text} as JSON to `sms_http_url`, with the message id also as the
    Idempotency-Key header; any 2xx is sent, anything else a failure. A replica that dies after
    the gateway took a message but before recording it tries it again once its claim lapses:
    the same id lets a gateway that de-duplicates send it once.

    The connections are kept open and reused, as many as the sweep sends at once
    (`sends_at_once`): a new connection (and a new HTTP client) per message cost more CPU than
    the rest of its delivery. A proxy in the environment (HTTP_PROXY, NO_PROXY, ...) is read
    once, at start-up."""
    sends_out = True

    def __init__(self, settings):
        self.url = settings.get("sms_http_url")
        if not self.url:
            raise ValueError("the http sms provider needs NOTIFICATIONS.sms_http_url")
        self.timeout = float(settings.get("sms_http_timeout_seconds") or 10)
        connections = int(settings.get("sends_at_once") or 32)
        proxy = requests.utils.get_environ_proxies(self.url).get(urlsplit(self.url).scheme)
        # block=False: a send past the bound opens a connection of its own rather than waiting
        self.pool = (urllib3.ProxyManager(proxy, maxsize=connections, block=False) if proxy else
                     urllib3.PoolManager(maxsize=connections, block=False))

    def deliver(self, message):
        body = json.dumps({"id": message.id, "to": message.recipient, "text": message.body})
        try:
            response = self.pool.request(
                "POST", self.url, body=body.encode(), timeout=self.timeout, retries=False,
                headers={"Content-Type": "application/json", "Idempotency-Key": message.id})
        except urllib3.exceptions.HTTPError as exc:
            raise DeliveryFailed(f"sms gateway unreachable: {exc}") from exc
        if not 200 <= response.status < 300:
            text = response.data.decode("utf-8", "replace")[:200]
            raise DeliveryFailed(f"sms gateway answered {response.status}: {text}")
        return "sent"


class Smtp:
    """Plain-text mail through `smtp_host:smtp_port` from `smtp_from`. Its Message-ID is made
    from the message id, so a mail sent again after a crash is the same mail to the reader's
    client."""
    sends_out = True

    def __init__(self, settings):
        self.host = settings.get("smtp_host") or "localhost"
        self.port = int(settings.get("smtp_port") or 25)
        self.sender = settings.get("smtp_from") or "propdesk@localhost"
        self.timeout = float(settings.get("smtp_timeout_seconds") or 10)

    def deliver(self, message):
        mail = EmailMessage()
        mail["From"], mail["To"] = self.sender, message.recipient
        mail["Subject"] = getattr(message, "subject", None) or "物业通知"
        mail["Message-ID"] = f"<{message.id}@{self.sender.rpartition('@')[2] or 'propdesk'}>"
        mail.set_content(message.body)
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as client:
                client.send_message(mail)
        except (smtplib.SMTPException, OSError) as exc:
            raise DeliveryFailed(f"smtp: {exc}") from exc
        return "sent"


PROVIDERS = {"store": StoreOnly, "http": HttpSms, "smtp": Smtp}


class Delivery:
    """Each channel's provider, the retry settings (`retry_base_seconds`, `max_attempts`) and
    the SMS quiet hours (`sms_quiet_hours`, default 22:00-08:00, or off)."""

    def __init__(self, by_channel, settings=None):
        self.by_channel = by_channel
        self.settings = dict(settings or {})
        configured = self.settings.get("sms_quiet_hours")
        self.quiet_hours = QUIET_HOURS if configured in (None, "") else quiet_hours(configured)

    def deliver(self, message):
        return self.by_channel[message.channel].deliver(message)

    def sends_out(self, channel):
        """Whether the channel's provider reaches people (quiet hours apply) or only stores."""
        return getattr(self.by_channel[channel], "sends_out", True)

    def setting(self, name, default):
        value = self.settings.get(name)
        return default if value is None or value == "" else type(default)(value)


def delivery_from(settings):
    """Each channel's provider as `<channel>_provider` names it (store-only when unnamed); an
    unknown name stops the service at start-up rather than at its first message."""
    def provider(channel):
        name = settings.get(f"{channel}_provider") or "store"
        if name not in PROVIDERS:
            raise ValueError(f"unknown {channel} provider {name!r}; known: {', '.join(PROVIDERS)}")
        return PROVIDERS[name](settings)
    return Delivery({channel: provider(channel) for channel in CHANNELS}, settings)


class Providers(DependencyProvider):
    """`self.delivery.deliver(message)` in the service."""

    def setup(self):
        self.delivery = delivery_from(self.container.config.get("NOTIFICATIONS") or {})

    def get_dependency(self, worker_ctx):
        return self.delivery
