# The cross-service suite's database fixtures, for registry's own tests: `db_url` (an empty
# database on SQLite and on PostgreSQL) and `bound_database` (a service's Database dependency on
# its own: the very unit of work and outbox its workers get). Importing tests.conftest also
# patches eventlet first, as it must be.
from tests.conftest import bound_database, db_url  # noqa: F401
