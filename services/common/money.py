"""Money rules that more than one side names: billing's rules and the events' contracts (a
reminder states the rate). Standard library only: domains import it."""
from decimal import Decimal

# The late fee (违约金) a day on overdue principal, where a site's fee schedule sets none (SPEC §4).
DEFAULT_LATE_FEE_DAILY_RATE = Decimal("0.0003")
