"""Breach-notification service: campaigns, email and SMS fan-out, delivery evidence."""

__version__ = "0.1.0"
