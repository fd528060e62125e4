"""What every propdesk service needs, and nothing more: event contracts, the database unit of
work with its transactional outbox, the clock and working-day calendar, the caller's identity,
errors that cross RPC, and metrics."""
