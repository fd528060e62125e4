"""What every propdesk service needs, and nothing more: event contracts, the database unit of
work with its transactional outbox, the clock and working-day calendar, the caller's identity,
errors that cross RPC, and metrics."""

# The services behind the gateway, in start order, and every process that runs (the gateway
# last). The launcher, migrations, the gateway's /ready, the tests and the bench read these.
BACKEND_SERVICES = ("registry", "ticketing", "notifications", "renovation", "billing", "frontdesk")
SERVICES = (*BACKEND_SERVICES, "gateway")
