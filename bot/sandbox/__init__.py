"""Telegram Bot API sandbox: a real HTTP server that bots talk to as if it were Telegram.

async with run_sandbox() as sb:
    sb.add_bot("123456:ABC", username="shop_bot")
    customer = sb.customer("123456:ABC", user_id=1001, first_name="Olena")
    await customer.start("payload")
    await sb.wait_idle("123456:ABC")
    assert customer.last_message().text == "..."
"""

from bot.sandbox.customers import Agent, Customer, ForumGroup
from bot.sandbox.errors import ApiError
from bot.sandbox.faults import Fault, Faults
from bot.sandbox.limits import Limits
from bot.sandbox.server import Sandbox, run_sandbox
from bot.sandbox.transcript import TapResult, TranscriptEntry
from bot.sandbox.world import BotStats, BotWorld, RawUpdate, Topic

__all__ = [
    "Agent",
    "ApiError",
    "BotStats",
    "BotWorld",
    "Customer",
    "Fault",
    "Faults",
    "ForumGroup",
    "Limits",
    "RawUpdate",
    "Sandbox",
    "TapResult",
    "Topic",
    "TranscriptEntry",
    "run_sandbox",
]
