"""The one Alembic environment: the service named by the caller brings its own metadata and
its own version history (services/<name>/migrations/versions)."""
import importlib

from alembic import context

from services.common.migrate import run_env

service = context.config.attributes["service"]
run_env(importlib.import_module(f"services.{service}.storage").Base.metadata)
