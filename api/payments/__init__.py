"""Payments: orders, channels, notifications, contributions, refunds and the tax-side outbox."""
