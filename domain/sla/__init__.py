"""Service level management: policies, targets and business calendars."""
