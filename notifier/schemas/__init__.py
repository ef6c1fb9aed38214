"""Every JSON body of the API, described once: each model validates what comes in, renders
what goes out and yields the JSON schema of the OpenAPI document. Nothing here knows about
the web framework, so other front ends (a console's HTML forms) reuse the same models."""
