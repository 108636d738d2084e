"""What tests read back: transcript entries of a chat and the outcome of a button tap."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

INLINE_ACTIONS = (
    "callback_data",
    "url",
    "web_app",
    "login_url",
    "switch_inline_query",
    "switch_inline_query_current_chat",
    "switch_inline_query_chosen_chat",
    "copy_text",
    "callback_game",
    "pay",
)


def button_value(button: dict[str, Any]) -> str | None:
    """Return a button's callback_data or URL (None for other kinds of buttons)."""
    if "callback_data" in button:
        return button["callback_data"]
    if "url" in button:
        return button["url"]
    return None


@dataclass(frozen=True)
class TranscriptEntry:
    """One message of a chat as it stands now: edits applied, deletion marked."""

    message_id: int
    from_bot: bool
    text: str | None
    caption: str | None
    photo: str | None
    photo_source: str | None
    buttons: list[list[tuple[str, str | None]]]
    keyboard: list[list[dict[str, Any]]]
    edited: bool
    deleted: bool
    thread_id: int | None
    sender_id: int | None
    contact: dict[str, Any] | None
    reply_to_message_id: int | None
    service: str | None
    history: list[str | None]
    message: dict[str, Any] = field(repr=False)

    @property
    def button_texts(self) -> list[str]:
        """Return the visible texts of all inline buttons, row by row."""
        return [text for row in self.buttons for text, _ in row]

    def button(self, text: str) -> dict[str, Any]:
        """Return the inline button with this visible text (KeyError if absent)."""
        for row in self.keyboard:
            for button in row:
                if button.get("text") == text:
                    return button
        raise KeyError(f"no button {text!r}; buttons: {self.button_texts}")


@dataclass(eq=False)
class TapResult:
    """What happened when a button was tapped, updated live when the bot answers."""

    button_text: str
    message_id: int
    callback_data: str | None = None
    url: str | None = None
    kind: str = "callback_data"
    callback_query_id: str | None = None
    answered: bool = False
    answer_text: str | None = None
    show_alert: bool = False
    answer_url: str | None = None
    _answered_event: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    def record_answer(self, text: str | None, show_alert: bool, url: str | None) -> None:
        """Store the bot's answerCallbackQuery."""
        self.answered = True
        self.answer_text = text
        self.show_alert = show_alert
        self.answer_url = url
        self._answered_event.set()

    async def wait_answered(self, timeout: float = 5.0) -> TapResult:  # noqa: ASYNC109
        """Wait until the bot answers the callback query; raise TimeoutError otherwise."""
        if self.callback_query_id is None:
            raise ValueError(f"a {self.kind} button produces no callback query to answer")
        try:
            async with asyncio.timeout(timeout):
                await self._answered_event.wait()
        except TimeoutError:
            raise TimeoutError(
                f"the bot did not answer the tap on {self.button_text!r} within {timeout}s"
            ) from None
        return self
