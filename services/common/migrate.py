"""Alembic, one migration history per service (services/<name>/migrations).

    python -m services.common.migrate [service ...]          upgrade each database to head
    python -m services.common.migrate revision SERVICE MSG   autogenerate the next migration
"""
import os
import sys

from alembic import command, context
from alembic.config import Config
from sqlalchemy import pool

from services.common import SERVICES
from services.common.config import load_config
from services.common.db import UTCDateTime, make_engine

SERVICES_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MIGRATED = SERVICES


def alembic_config(service, url):
    cfg = Config()
    cfg.set_main_option("script_location", os.path.join(SERVICES_DIR, "common", "alembic"))
    cfg.set_main_option("version_locations",
                        os.path.join(SERVICES_DIR, service, "migrations", "versions"))
    cfg.attributes.update(service=service, url=url)
    return cfg


def revision(service, url, message):
    """Autogenerate the next migration of `service` from its models (development use)."""
    command.revision(alembic_config(service, url), message=message, autogenerate=True)


def upgrade(service, url, revision="head"):
    command.upgrade(alembic_config(service, url), revision)


def run_env(target_metadata):
    """The body of every service's migrations/env.py."""
    url = context.config.attributes["url"]
    engine = make_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(
            connection=connection, target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite", compare_type=True,
            render_item=_render_item,
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


def _render_item(kind, obj, autogen_context):
    """Migrations name plain SQLAlchemy types, so that they never import application code."""
    if kind == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def main(argv):
    config = load_config()
    if argv[:1] == ["revision"]:
        service, message = argv[1], argv[2]
        return revision(service, config["DB_URIS"][service], message)
    for service in argv or MIGRATED:
        url = config["DB_URIS"][service]
        upgrade(service, url)
        print(f"migrated {service}: {url.split('@')[-1]}")


if __name__ == "__main__":
    main(sys.argv[1:])
