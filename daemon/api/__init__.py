"""The daemon's APIs: the service layer (every operation a client can ask for), the request models
(``requests``: one per operation, shared by both servers and the OpenAPI document), the Unix socket
server, the HTTP API and its OpenAPI document.

May import: ``daemon.core``, ``daemon.config``, ``daemon.protocol``, ``daemon.storage`` and
``daemon.channels`` (for types). Never the runtime, the CLI, the bot or the TUI.
"""
