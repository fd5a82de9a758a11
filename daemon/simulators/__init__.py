"""Loopback simulators of the providers: Telegram Bot API, Twilio / webhook SMS, and SMTP.

Used by the demo (``daemon.simulators.demo``, `make demo`), the tests and the benchmark; no
production module imports them (an import contract). They only ever bind to 127.0.0.1.
"""
