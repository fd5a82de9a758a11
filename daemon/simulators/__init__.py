"""Loopback simulators of the providers: Telegram Bot API, Twilio / webhook SMS, and SMTP.

Used by the demo, the tests and the benchmark. They only ever bind to 127.0.0.1.
"""
