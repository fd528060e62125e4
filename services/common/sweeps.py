"""What every sweep entrypoint takes (SPEC §7), in the gateway and in the service alike."""
from marshmallow import Schema

from services.common.fields import Instant


class SweepIn(Schema):
    as_of = Instant(required=True, metadata={
        "description": "the instant to sweep at, with its offset; a sweep that works by day takes "
                       "the day of this instant in each site's time zone"})
