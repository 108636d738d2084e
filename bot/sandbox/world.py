"""One bot's world: its user, chats, messages, files, callback queries and pending updates."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bot.clock import Clock
from bot.sandbox.errors import BLOCKED, CHAT_NOT_FOUND, ApiError, bad_request
from bot.sandbox.limits import Limits, SendLimiter
from bot.sandbox.transcript import TapResult, TranscriptEntry, button_value

if TYPE_CHECKING:
    from bot.sandbox.delivery import WebhookDelivery

# Updates a bot gets when it does not name allowed_updates (Telegram's default).
DEFAULT_UPDATE_TYPES = frozenset(
    {
        "message",
        "edited_message",
        "channel_post",
        "edited_channel_post",
        "callback_query",
        "my_chat_member",
        "inline_query",
        "chosen_inline_result",
        "shipping_query",
        "pre_checkout_query",
        "poll",
        "poll_answer",
        "chat_join_request",
    }
)


class RawUpdate(dict[str, Any]):
    """An update whose body is given as raw bytes (malformed or hostile on purpose).

    The dict holds only `update_id` (for offsets); `body` is what the bot receives verbatim.
    """

    def __init__(self, update_id: int, body: bytes) -> None:
        super().__init__(update_id=update_id)
        self.body = body


@dataclass(eq=False)
class StoredMessage:
    """A message in a chat: its current Message object and what the transcript needs."""

    message: dict[str, Any]
    from_bot: bool
    thread_id: int | None
    deleted: bool = False
    history: list[dict[str, Any]] = field(default_factory=list)
    photo_source: str | None = None

    @property
    def message_id(self) -> int:
        """Return the message's id inside its chat."""
        return self.message["message_id"]

    @property
    def is_service(self) -> bool:
        """Tell whether this is a service message (topic created, closed, …)."""
        return any(key in self.message for key in _SERVICE_KEYS)

    def entry(self) -> TranscriptEntry:
        """Return the transcript view of this message."""
        msg = self.message
        keyboard = msg.get("reply_markup", {}).get("inline_keyboard", [])
        photo = msg.get("photo")
        service = next((k for k in _SERVICE_KEYS if k in msg), None)
        return TranscriptEntry(
            message_id=msg["message_id"],
            from_bot=self.from_bot,
            text=msg.get("text", msg.get("caption")),
            caption=msg.get("caption"),
            photo=photo[-1]["file_id"] if photo else None,
            photo_source=self.photo_source,
            buttons=[[(b["text"], button_value(b)) for b in row] for row in keyboard],
            keyboard=keyboard,
            edited="edit_date" in msg,
            deleted=self.deleted,
            thread_id=self.thread_id,
            sender_id=msg["from"]["id"] if "from" in msg else None,
            contact=msg.get("contact"),
            reply_to_message_id=msg.get("reply_to_message", {}).get("message_id"),
            service=service,
            history=[old.get("text", old.get("caption")) for old in self.history],
            message=msg,
        )


_SERVICE_KEYS = (
    "forum_topic_created",
    "forum_topic_edited",
    "forum_topic_closed",
    "forum_topic_reopened",
)


@dataclass(eq=False)
class Topic:
    """A forum topic of a supergroup."""

    thread_id: int
    name: str
    icon_color: int
    icon_custom_emoji_id: str | None = None
    closed: bool = False

    def as_forum_topic(self) -> dict[str, Any]:
        """Return the ForumTopic object."""
        topic: dict[str, Any] = {
            "message_thread_id": self.thread_id,
            "name": self.name,
            "icon_color": self.icon_color,
        }
        if self.icon_custom_emoji_id:
            topic["icon_custom_emoji_id"] = self.icon_custom_emoji_id
        return topic


class ChatState:
    """A chat as the bot sees it: its messages in order, members, topics and block state."""

    def __init__(
        self,
        chat_id: int,
        kind: str,
        *,
        title: str | None = None,
        user: dict[str, Any] | None = None,
        is_forum: bool = False,
        username: str | None = None,
    ) -> None:
        self.id = chat_id
        self.type = kind
        self.title = title
        self.user = user
        self.is_forum = is_forum
        self.username = username
        self.blocked = False
        self.topics: dict[int, Topic] = {}
        self.members: dict[int, dict[str, Any]] = {}
        self.messages: dict[int, StoredMessage] = {}
        self.order: list[StoredMessage] = []
        self.reply_keyboard: dict[str, Any] | None = None
        self.actions: list[str] = []
        self._ids = itertools.count(1)
        self._waiters: list[asyncio.Future[None]] = []
        if kind == "private" and user is not None:
            self.summary: dict[str, Any] = {"id": chat_id, "first_name": user["first_name"]}
            for key in ("last_name", "username"):
                if user.get(key):
                    self.summary[key] = user[key]
            self.summary["type"] = "private"
        else:
            self.summary = {"id": chat_id, "title": title or "", "type": kind}
            if username:
                self.summary["username"] = username
            if is_forum:
                self.summary["is_forum"] = True

    @property
    def is_group(self) -> bool:
        """Tell whether the chat is a group or supergroup (the 20-per-minute limit applies)."""
        return self.type in ("group", "supergroup")

    def next_message_id(self) -> int:
        """Allocate the next message id of this chat."""
        return next(self._ids)

    def add(self, stored: StoredMessage) -> None:
        """Store a new message and wake whoever waits for one."""
        self.messages[stored.message_id] = stored
        self.order.append(stored)
        self.changed()

    def changed(self) -> None:
        """Wake every waiter (a message was added)."""
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def wait_change(self) -> asyncio.Future[None]:
        """Return a future resolved when the next message arrives."""
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        return waiter

    def live(self, message_id: int) -> StoredMessage | None:
        """Return a message that exists and was not deleted."""
        stored = self.messages.get(message_id)
        if stored is None or stored.deleted:
            return None
        return stored


@dataclass(eq=False)
class CallbackState:
    """A callback query waiting for answerCallbackQuery."""

    query_id: str
    created_at: float
    tap: TapResult
    answered: bool = False


@dataclass(eq=False)
class Webhook:
    """The webhook the bot set and what happened when delivering to it."""

    url: str
    secret_token: str | None = None
    max_connections: int = 40
    ip_address: str | None = None
    last_error_date: int | None = None
    last_error_message: str | None = None

    def info(self, pending: int, allowed_updates: set[str] | None) -> dict[str, Any]:
        """Return the WebhookInfo object."""
        info: dict[str, Any] = {
            "url": self.url,
            "has_custom_certificate": False,
            "pending_update_count": pending,
            "max_connections": self.max_connections,
        }
        if self.ip_address:
            info["ip_address"] = self.ip_address
        if self.last_error_date is not None:
            info["last_error_date"] = self.last_error_date
            info["last_error_message"] = self.last_error_message
        if allowed_updates is not None:
            info["allowed_updates"] = sorted(allowed_updates)
        return info


@dataclass
class BotStats:
    """A snapshot of what one bot did against the sandbox."""

    requests: Counter[str] = field(default_factory=Counter)
    errors: Counter[int] = field(default_factory=Counter)
    sends: int = 0
    rate_limited: int = 0
    faults_injected: int = 0
    updates_created: int = 0
    updates_acknowledged: int = 0
    webhook_failures: int = 0
    max_sends_in_1s: int = 0
    max_chat_sends_in_1s: int = 0
    max_arrivals_in_1s: int = 0  # send requests that arrived, refused ones too

    @property
    def total_requests(self) -> int:
        """Return the number of API requests of all methods."""
        return sum(self.requests.values())


class BotWorld:
    """Everything one bot token owns in the sandbox."""

    def __init__(
        self,
        token: str,
        *,
        username: str | None,
        first_name: str | None,
        limits: Limits,
        clock: Clock,
        callback_timeout: float,
    ) -> None:
        prefix = token.split(":", 1)[0]
        self.token = token
        self.id = int(prefix) if prefix.isdigit() else abs(hash(token)) % 10**10
        self.username = username or f"sandbox_{self.id}_bot"
        self.first_name = first_name or self.username
        self.user = {
            "id": self.id,
            "is_bot": True,
            "first_name": self.first_name,
            "username": self.username,
        }
        self.clock = clock
        self.callback_timeout = callback_timeout
        self.limiter = SendLimiter(limits)
        self.chats: dict[int, ChatState] = {}
        self.users: dict[int, dict[str, Any]] = {}
        self.updates: deque[dict[str, Any]] = deque()
        self._update_ids = itertools.count(1)
        self.allowed_updates: set[str] | None = None
        self.webhook: Webhook | None = None
        self.delivery: WebhookDelivery | None = None
        self.delivery_task: asyncio.Task[None] | None = None
        self.poller: asyncio.Future[None] | None = None
        self._update_waiters: list[asyncio.Future[None]] = []
        self.files: dict[str, list[dict[str, Any]]] = {}
        self._file_ids = itertools.count(1)
        self.callbacks: dict[str, CallbackState] = {}
        self._callback_ids = itertools.count(1)
        self.commands: dict[str, list[dict[str, str]]] = {}
        self.menu_buttons: dict[int | None, dict[str, Any]] = {}
        self.stats = BotStats()
        self.inflight = 0
        self.last_activity = 0.0

    # ------------------------------------------------------------------------------ time

    def touch(self) -> None:
        """Note that the bot just did something (for wait_idle's quiet period)."""
        self.last_activity = time.monotonic()

    def now(self) -> float:
        """Return the sandbox clock as Unix seconds."""
        return self.clock.now().timestamp()

    def date(self) -> int:
        """Return the `date` field for a message created now."""
        return int(self.now())

    # ----------------------------------------------------------------------------- chats

    def chat(self, chat_id: object) -> ChatState:
        """Return the chat with this id or @username, or raise "chat not found"."""
        if isinstance(chat_id, int) and not isinstance(chat_id, bool):
            chat = self.chats.get(chat_id)
        elif isinstance(chat_id, str) and chat_id.lstrip("-").isdigit():
            chat = self.chats.get(int(chat_id))
        elif isinstance(chat_id, str) and chat_id.startswith("@"):
            name = chat_id[1:].lower()
            chat = next(
                (c for c in self.chats.values() if (c.username or "").lower() == name), None
            )
        elif chat_id is None or chat_id == "":
            raise bad_request("chat_id is empty")
        else:
            chat = None
        if chat is None:
            raise bad_request(CHAT_NOT_FOUND)
        return chat

    def writable_chat(self, chat_id: object) -> ChatState:
        """Return a chat the bot may write to, or raise chat-not-found / blocked."""
        chat = self.chat(chat_id)
        if chat.blocked:
            raise ApiError(403, BLOCKED)
        return chat

    def open_private_chat(self, user: dict[str, Any]) -> ChatState:
        """Create (or refresh) the private chat with a user; its id is the user's id."""
        self.users[user["id"]] = user
        chat = self.chats.get(user["id"])
        if chat is None:
            chat = self.chats[user["id"]] = ChatState(user["id"], "private", user=user)
        return chat

    def add_message(
        self,
        chat: ChatState,
        sender: dict[str, Any],
        content: dict[str, Any],
        *,
        from_bot: bool,
        thread_id: int | None = None,
        reply_to: StoredMessage | None = None,
        photo_source: str | None = None,
    ) -> StoredMessage:
        """Create a message in `chat` with Telegram's fields and store it."""
        message_id = chat.next_message_id()
        message: dict[str, Any] = {"message_id": message_id}
        if thread_id is not None:
            message["message_thread_id"] = thread_id
        message["from"] = sender
        message["chat"] = chat.summary
        message["date"] = self.date()
        if thread_id is not None and chat.is_forum:
            message["is_topic_message"] = True
            if reply_to is None and thread_id in chat.messages:
                reply_to = chat.messages[thread_id]
        if reply_to is not None:
            quoted = dict(reply_to.message)
            quoted.pop("reply_to_message", None)
            message["reply_to_message"] = quoted
        message.update(content)
        stored = StoredMessage(
            message, from_bot=from_bot, thread_id=thread_id, photo_source=photo_source
        )
        chat.add(stored)
        return stored

    # ----------------------------------------------------------------------------- files

    def new_photo(self, width: int = 1280, height: int = 960) -> list[dict[str, Any]]:
        """Register a new photo and return its PhotoSize list (small to large)."""
        number = next(self._file_ids)
        sizes = []
        for index, scale in enumerate((90, 320, 800, max(width, height))):
            if index and scale <= sizes[-1]["width"]:
                continue
            ratio = scale / max(width, height)
            sizes.append(
                {
                    "file_id": f"AgACAgIAAxkB{self.id:x}{number:06d}{index}AAQ",
                    "file_unique_id": f"AQAD{number:06d}{index}",
                    "file_size": 1200 * (index + 1) * 7,
                    "width": max(1, round(width * ratio)),
                    "height": max(1, round(height * ratio)),
                }
            )
        for size in sizes:
            self.files[size["file_id"]] = sizes
        return sizes

    # --------------------------------------------------------------------------- updates

    def enqueue(self, kind: str, payload: dict[str, Any]) -> dict[str, Any] | None:
        """Create an update of `kind` unless the bot's allowed_updates exclude it."""
        allowed = self.allowed_updates if self.allowed_updates is not None else None
        if allowed is None:
            if kind not in DEFAULT_UPDATE_TYPES:
                return None
        elif kind not in allowed:
            return None
        update = {"update_id": next(self._update_ids), kind: payload}
        self._queue(update)
        return update

    def enqueue_raw(
        self, render: Callable[[int], str | bytes], *, update_id: int | None = None
    ) -> RawUpdate:
        """Queue an update whose body `render(update_id)` returns, delivered byte for byte.

        Give `update_id` to send an update again under its old id, as Telegram does when it
        never learned the bot had it.
        """
        if update_id is None:
            update_id = next(self._update_ids)
        body = render(update_id)
        update = RawUpdate(update_id, body.encode() if isinstance(body, str) else body)
        self._queue(update)
        return update

    def _queue(self, update: dict[str, Any]) -> None:
        self.updates.append(update)
        self.stats.updates_created += 1
        waiters, self._update_waiters = self._update_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def wait_update(self) -> asyncio.Future[None]:
        """Return a future resolved when the next update is created."""
        waiter = asyncio.get_running_loop().create_future()
        self._update_waiters.append(waiter)
        return waiter

    def confirm(self, offset: int) -> None:
        """Forget updates below `offset` (positive) or all but the last -offset (negative)."""
        updates = self.updates
        if offset > 0:
            while updates and updates[0]["update_id"] < offset:
                updates.popleft()
                self.stats.updates_acknowledged += 1
        elif offset < 0:
            while len(updates) > -offset:
                updates.popleft()

    def acknowledge(self, update: dict[str, Any]) -> None:
        """Drop an update the webhook accepted."""
        if self.updates and self.updates[0] is update:
            self.updates.popleft()
            self.stats.updates_acknowledged += 1
        self.touch()

    @property
    def pending(self) -> int:
        """Return the number of updates not yet acknowledged."""
        return len(self.updates)

    # ------------------------------------------------------------------------- callbacks

    def new_callback(self, tap: TapResult) -> str:
        """Register a callback query for a tap and return its id."""
        query_id = f"{self.id % 10**6}{next(self._callback_ids):012d}"
        self.callbacks[query_id] = CallbackState(query_id, self.now(), tap)
        tap.callback_query_id = query_id
        return query_id

    def stats_snapshot(self) -> BotStats:
        """Return a copy of the counters, with the one-second peaks filled in."""
        stats = self.stats
        per_chat = self.limiter.sent_per_chat.values()
        return BotStats(
            requests=Counter(stats.requests),
            errors=Counter(stats.errors),
            sends=stats.sends,
            rate_limited=stats.rate_limited,
            faults_injected=stats.faults_injected,
            updates_created=stats.updates_created,
            updates_acknowledged=stats.updates_acknowledged,
            webhook_failures=stats.webhook_failures,
            max_sends_in_1s=self.limiter.sent.peak,
            max_chat_sends_in_1s=max((w.peak for w in per_chat), default=0),
            max_arrivals_in_1s=self.limiter.arrived.peak,
        )

    def reset_stats(self) -> None:
        """Zero the counters and the send windows."""
        self.stats = BotStats()
        self.limiter.reset()
