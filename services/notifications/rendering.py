"""Message bodies from Jinja2 templates (Chinese by default), one file per template and channel:
templates/<template>.<channel>.j2. A field the template needs but the event lacks is an error,
not a blank in a resident's SMS."""
import os

from jinja2 import Environment, FileSystemLoader, StrictUndefined

TEMPLATES_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "templates")

# Plain text for SMS, staff tasks and letters: nothing to escape.
_environment = Environment(
    loader=FileSystemLoader(TEMPLATES_DIR), undefined=StrictUndefined, autoescape=False,
)


def render(draft):
    template = _environment.get_template(f"{draft.template}.{draft.channel}.j2")
    return template.render(draft.context).strip()
