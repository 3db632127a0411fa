"""What every practice shares: actor, errors, calendar, priority, base event."""
