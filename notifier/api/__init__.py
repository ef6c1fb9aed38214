"""The REST API: handlers by resource, the route table (`routes`), the middlewares, and the
OpenAPI document. `notifier.app.create_app` wires them together."""
