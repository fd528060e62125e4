"""Message bodies from Jinja2 templates (Chinese by default), one file per template and channel:
templates/<template>.<channel>.j2. A field the template needs but the event lacks is an error,
not a blank in a resident's SMS.

An email template's first line is its subject; the rest is the body. `samples.json` gives every
template the event it serves and a sample context, for previews (and for the test that renders
each one). A letter is printed from `printable.html.j2`.
"""
import json
import os
from dataclasses import dataclass

from jinja2 import Environment, FileSystemLoader, StrictUndefined, TemplateNotFound, UndefinedError

from services.notifications.domain import CHANNELS

TEMPLATES_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "templates")

# Plain text for SMS, staff tasks and letters: nothing to escape.
_plain = Environment(loader=FileSystemLoader(TEMPLATES_DIR), undefined=StrictUndefined,
                     autoescape=False)
# The printable page is HTML around text that came from events: escaped.
_html = Environment(loader=FileSystemLoader(TEMPLATES_DIR), undefined=StrictUndefined,
                    autoescape=True)


class UnknownTemplate(LookupError):
    pass


class MissingField(ValueError):
    """The context lacks a field the template uses (Jinja2's message names it)."""


@dataclass(frozen=True)
class Rendered:
    body: str
    subject: str | None = None


def render(draft):
    return render_template(draft.template, draft.channel, draft.context)


def render_template(name, channel, context):
    try:
        template = _plain.get_template(f"{name}.{channel}.j2")
    except TemplateNotFound as exc:
        raise UnknownTemplate(f"no template {name} for channel {channel}") from exc
    try:
        text = template.render(context).strip()
    except UndefinedError as exc:
        raise MissingField(str(exc)) from exc
    if channel == "email":
        subject, _, body = text.partition("\n")
        return Rendered(body.strip(), subject.strip())
    return Rendered(text)


def _load_samples():
    with open(os.path.join(TEMPLATES_DIR, "samples.json"), encoding="utf-8") as f:
        return json.load(f)


SAMPLES = _load_samples()


def templates():
    """Every (template, channel) there is a file for, with the event it serves and the fields
    its sample fills: [{name, channel, event, fields}], sorted."""
    found = []
    for filename in sorted(os.listdir(TEMPLATES_DIR)):
        stem, _, suffix = filename.rpartition(".")
        name, _, channel = stem.rpartition(".")
        if suffix == "j2" and channel in CHANNELS:
            sample = SAMPLES.get(name, {})
            found.append({"name": name, "channel": channel, "event": sample.get("event"),
                          "fields": sorted(sample.get("context", {}))})
    return found


def preview(name, channel, context=None):
    """The message as it would read, from `context` laid over the template's sample."""
    sample = SAMPLES.get(name, {}).get("context", {})
    return render_template(name, channel, {**sample, **(context or {})})


def printable(message, issued_on):
    """A letter as an A4 HTML page for staff to print and post; its title is the body's first
    line, each further line a paragraph."""
    title, _, rest = message.body.partition("\n")
    return _html.get_template("printable.html.j2").render(
        title=title.strip(), paragraphs=[line for line in rest.splitlines() if line.strip()],
        id=message.id, recipient=message.recipient, unit=message.unit, event=message.event,
        issued_on=issued_on)
