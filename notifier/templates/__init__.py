"""Campaign templates: checked when a campaign is created, compiled once, rendered per person.

Templates are Jinja, sandboxed, and further limited to what a notice needs (variables,
``{% if %}`` and a few filters that never grow their input), so no campaign can make a worker
loop or build huge strings. Email is assembled straight into wire bytes from parts computed
once per campaign; only the values that differ per person are encoded per message.

``environment`` holds the sandbox and rendering, ``checks`` what a campaign's templates may
contain, ``links`` the link allow-list, ``sms`` segment counting, ``locales`` which template
serves a recipient, ``mime`` header and body encoding, ``compiled`` the compiled campaign.
"""
