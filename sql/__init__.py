"""Migrations and named queries; installed inside the package as `notifier.sql`."""
