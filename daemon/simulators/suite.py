"""All three simulators together, plus one HTTP control app to inject faults from outside.

Control API (JSON), for the demo, the chaos test and people poking at a running demo:
    POST   {control}/{telegram|smtp|sms}/faults    body: a FaultRule, e.g. {"kind": "error", "count": 2}
    DELETE {control}/{telegram|smtp|sms}/faults
    GET    {control}/{telegram|smtp|sms}/messages
    POST   {control}/telegram/updates              a raw Telegram update for getUpdates
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

from aiohttp import web

from daemon.simulators.sms import SmsSimulator
from daemon.simulators.smtp import SmtpSimulator
from daemon.simulators.telegram import TelegramSimulator

LOOPBACK = "127.0.0.1"


class SimulatorSuite:
    def __init__(
        self,
        telegram_token: str = "123456:SIMULATED-telegram-token-000000",
        sms_account_sid: str = "ACsimulated",
        sms_auth_token: str = "simulated-auth-token",
    ) -> None:
        self.telegram = TelegramSimulator(token=telegram_token)
        self.smtp = SmtpSimulator()
        self.sms = SmsSimulator(account_sid=sms_account_sid, auth_token=sms_auth_token)
        self.telegram_token = telegram_token
        self.sms_account_sid = sms_account_sid
        self.sms_auth_token = sms_auth_token
        self.telegram_url = self.sms_url = self.control_url = ""
        self.smtp_port = 0
        self._control: web.AppRunner | None = None

    async def start(self, ports: dict[str, int] | None = None) -> SimulatorSuite:
        ports = ports or {}
        self.telegram_url = await self.telegram.start(LOOPBACK, ports.get("telegram", 0))
        _, self.smtp_port = await self.smtp.start(LOOPBACK, ports.get("smtp", 0))
        self.sms_url = await self.sms.start(LOOPBACK, ports.get("sms", 0))
        app = web.Application()
        for prefix, sim in (("/telegram", self.telegram), ("/smtp", self.smtp), ("/sms", self.sms)):
            sub = web.Application()
            sub.add_routes(sim.control_routes())
            app.add_subapp(prefix, sub)
        self._control = web.AppRunner(app, access_log=None)
        await self._control.setup()
        site = web.TCPSite(self._control, LOOPBACK, ports.get("control", 0))
        await site.start()
        port = self._control.addresses[0][1]
        self.control_url = f"http://{LOOPBACK}:{port}"
        return self

    async def stop(self) -> None:
        if self._control is not None:
            await self._control.cleanup()
            self._control = None
        await self.sms.stop()
        await self.smtp.stop()
        await self.telegram.stop()

    async def __aenter__(self) -> SimulatorSuite:
        return await self.start()

    async def __aexit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        await self.stop()

    def config_sections(self) -> dict[str, dict[str, Any]]:
        """The daemon config that points every channel at these simulators."""
        return {
            "telegram": {"enabled": True, "token": self.telegram_token, "api_base": self.telegram_url},
            "email": {"enabled": True, "host": LOOPBACK, "port": self.smtp_port, "security": "none",
                      "sender": "alerts@failover-notify.test"},
            "sms": {"enabled": True, "provider": "twilio", "base_url": self.sms_url,
                    "account_sid": self.sms_account_sid, "auth_token": self.sms_auth_token,
                    "sender": "+15005550006"},
        }

    def config_toml(self) -> str:
        lines = []
        for section, values in self.config_sections().items():
            lines.append(f"[{section}]")
            for key, value in values.items():
                rendered = ("true" if value else "false") if isinstance(value, bool) else (
                    str(value) if isinstance(value, int) else f'"{value}"')
                lines.append(f"{key} = {rendered}")
            lines.append("")
        return "\n".join(lines)
