"""config.yml with Nameko's own `${ENV:default}` substitution, for code outside `nameko run`
(migrations, CLIs, tests, bench)."""
import os

import yaml
from nameko.cli.main import setup_yaml_parser

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_PATH = os.path.join(ROOT, "config.yml")


def load_config(path=None, **overrides):
    setup_yaml_parser()
    with open(path or os.environ.get("PROPDESK_CONFIG", DEFAULT_PATH)) as handle:
        config = yaml.safe_load(handle)
    config.update(overrides)
    return config
