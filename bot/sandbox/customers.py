"""People the sandbox plays: customers in private chats and agents in a forum support group.

Their actions become updates for the bot (messages, callback queries, my_chat_member), and
their chats' transcripts show what the bot did.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

from bot.sandbox.markup import detect_entities
from bot.sandbox.methods import TOPIC_COLORS
from bot.sandbox.transcript import INLINE_ACTIONS, TapResult, TranscriptEntry
from bot.sandbox.world import BotWorld, ChatState, StoredMessage, Topic

_PAYLOAD_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")


def make_user(
    user_id: int,
    first_name: str,
    *,
    last_name: str | None = None,
    username: str | None = None,
    language_code: str | None = None,
) -> dict[str, Any]:
    """Return a Telegram User object for a person."""
    user: dict[str, Any] = {"id": user_id, "is_bot": False, "first_name": first_name}
    if last_name:
        user["last_name"] = last_name
    if username:
        user["username"] = username
    if language_code:
        user["language_code"] = language_code
    return user


class Participant:
    """Someone writing in one chat of one bot."""

    def __init__(self, world: BotWorld, chat: ChatState, user: dict[str, Any]) -> None:
        self.world = world
        self.chat = chat
        self.user = user
        self._cursor = len(chat.order)

    @property
    def user_id(self) -> int:
        """Return the person's Telegram user id."""
        return self.user["id"]

    def _say(
        self,
        content: dict[str, Any],
        *,
        thread_id: int | None = None,
        reply_to: int | None = None,
    ) -> dict[str, Any]:
        target = None
        if reply_to is not None:
            target = self.chat.live(reply_to)
            if target is None:
                raise LookupError(f"no message {reply_to} in chat {self.chat.id} to reply to")
        if thread_id is not None and thread_id not in self.chat.topics:
            raise LookupError(f"no topic {thread_id} in chat {self.chat.id}")
        stored = self.world.add_message(
            self.chat, self.user, content, from_bot=False, thread_id=thread_id, reply_to=target
        )
        self._cursor = len(self.chat.order)
        self.world.enqueue("message", stored.message)
        return stored.message

    def _text(self, text: str) -> dict[str, Any]:
        content: dict[str, Any] = {"text": text}
        entities = detect_entities(text)
        if entities:
            content["entities"] = entities
        return content

    def _media(self, kind: str, caption: str | None) -> dict[str, Any]:
        """Return the content of a media message of `kind` (photo, document, voice, video…)."""
        content: dict[str, Any]
        if kind == "photo":
            content = {"photo": self.world.new_photo()}
        else:
            number = len(self.world.files) + 1
            file_id = f"BQACAgIAAxkB{self.world.id:x}{kind}{number:06d}AAQ"
            media: dict[str, Any] = {
                "file_id": file_id,
                "file_unique_id": f"AgAD{kind[:3]}{number:06d}",
                "file_size": 4096 * number,
            }
            if kind == "document":
                media.update(file_name=f"file{number}.pdf", mime_type="application/pdf")
            elif kind == "voice":
                media.update(duration=3, mime_type="audio/ogg")
            elif kind == "video":
                media.update(width=640, height=360, duration=5)
            elif kind == "sticker":
                media.update(
                    type="regular", width=512, height=512, is_animated=False, is_video=False
                )
            else:
                raise ValueError(f"unknown media kind {kind!r}")
            self.world.files[file_id] = [media]
            content = {kind: media}
        if caption and kind != "sticker":
            content["caption"] = caption
            entities = detect_entities(caption)
            if entities:
                content["caption_entities"] = entities
        return content

    def _find_button(
        self, text: str, message_id: int | None, thread_id: int | None = None
    ) -> tuple[StoredMessage, dict[str, Any]]:
        candidates: list[StoredMessage]
        if message_id is not None:
            stored = self.chat.live(message_id)
            if stored is None:
                raise LookupError(f"no message {message_id} in chat {self.chat.id}")
            candidates = [stored]
        else:
            candidates = [
                s
                for s in reversed(self.chat.order)
                if s.from_bot and not s.deleted and (thread_id is None or s.thread_id == thread_id)
            ]
        for stored in candidates:
            for row in stored.message.get("reply_markup", {}).get("inline_keyboard", []):
                for button in row:
                    if button.get("text") == text:
                        return stored, button
        visible = [
            b["text"]
            for s in candidates
            for row in s.message.get("reply_markup", {}).get("inline_keyboard", [])
            for b in row
        ]
        raise LookupError(f"no inline button {text!r} in chat {self.chat.id}; buttons: {visible}")

    async def tap(
        self, text: str, *, message_id: int | None = None, thread_id: int | None = None
    ) -> TapResult:
        """Tap the inline button with this text on the latest bot message that has it."""
        stored, button = self._find_button(text, message_id, thread_id)
        kind = next(k for k in INLINE_ACTIONS if k in button)
        result = TapResult(button_text=text, message_id=stored.message_id, kind=kind)
        self._cursor = len(self.chat.order)
        if kind == "url":
            result.url = button["url"]
            return result
        if kind != "callback_data":
            return result
        result.callback_data = button["callback_data"]
        self._send_callback(stored, result)
        return result

    async def tap_data(self, data: str, *, message_id: int) -> TapResult:
        """Send a callback_query with any data on a bot message, as a tampered client could."""
        stored = self.chat.live(message_id)
        if stored is None:
            raise LookupError(f"no message {message_id} in chat {self.chat.id}")
        result = TapResult(button_text="", message_id=message_id, kind="callback_data")
        result.callback_data = data
        self._cursor = len(self.chat.order)
        self._send_callback(stored, result)
        return result

    def _send_callback(self, stored: StoredMessage, result: TapResult) -> None:
        query_id = self.world.new_callback(result)
        instance = (self.world.id * 1_000_003 + self.chat.id) % 10**18
        self.world.enqueue(
            "callback_query",
            {
                "id": query_id,
                "from": self.user,
                "message": stored.message,
                "chat_instance": str(instance),
                "data": result.callback_data,
            },
        )

    def _entries(self, thread_id: int | None, include_deleted: bool) -> list[TranscriptEntry]:
        return [
            s.entry()
            for s in self.chat.order
            if (include_deleted or not s.deleted)
            and (thread_id is None or s.thread_id == thread_id)
        ]

    async def _next_bot_message(
        self,
        timeout: float,  # noqa: ASYNC109 - a deadline
        thread_id: int | None = None,
    ) -> TranscriptEntry:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            order = self.chat.order
            for index in range(self._cursor, len(order)):
                stored = order[index]
                if (
                    stored.from_bot
                    and not stored.is_service
                    and (thread_id is None or stored.thread_id == thread_id)
                ):
                    self._cursor = index + 1
                    return stored.entry()
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"no new bot message in chat {self.chat.id} within {timeout}s")
            waiter = self.chat.wait_change()
            try:
                async with asyncio.timeout(remaining):
                    await waiter
            except TimeoutError:
                pass


class Customer(Participant):
    """A Telegram user in a private chat with the bot."""

    @property
    def chat_id(self) -> int:
        """Return the private chat's id (equal to the user id, as in Telegram)."""
        return self.chat.id

    @property
    def blocked(self) -> bool:
        """Tell whether the customer has blocked the bot."""
        return self.chat.blocked

    def _check_open(self) -> None:
        if self.chat.blocked:
            raise RuntimeError(
                f"customer {self.user_id} blocked the bot; call unblock() or start() first"
            )

    async def send(self, text: str, *, reply_to: int | None = None) -> dict[str, Any]:
        """Send a text message to the bot; return the Message delivered in the update."""
        self._check_open()
        return self._say(self._text(text), reply_to=reply_to)

    async def start(self, payload: str | None = None) -> dict[str, Any]:
        """Open the bot through a t.me/<bot>?start=<payload> link ("Restart" if blocked)."""
        if payload is not None and not _PAYLOAD_RE.fullmatch(payload):
            raise ValueError(
                f"deep-link payload {payload!r} is not 1-64 characters of A-Z, a-z, 0-9, _ and -"
            )
        if self.chat.blocked:
            await self.unblock()
        return await self.send("/start" if payload is None else f"/start {payload}")

    async def reply(self, message_id: int, text: str) -> dict[str, Any]:
        """Reply to a message of the chat (reply_to_message is set)."""
        return await self.send(text, reply_to=message_id)

    async def share_contact(
        self,
        phone_number: str,
        *,
        first_name: str | None = None,
        last_name: str | None = None,
        user_id: int | None = None,
    ) -> dict[str, Any]:
        """Share a phone number (message.contact); the customer's own unless user_id differs."""
        self._check_open()
        contact: dict[str, Any] = {
            "phone_number": phone_number,
            "first_name": first_name or self.user["first_name"],
            "user_id": self.user_id if user_id is None else user_id,
        }
        if last_name or self.user.get("last_name"):
            contact["last_name"] = last_name or self.user["last_name"]
        return self._say({"contact": contact})

    async def send_photo(
        self, caption: str | None = None, *, width: int = 1280, height: int = 960
    ) -> dict[str, Any]:
        """Send a photo (optionally captioned) to the bot."""
        self._check_open()
        content: dict[str, Any] = {"photo": self.world.new_photo(width, height)}
        if caption:
            content["caption"] = caption
            entities = detect_entities(caption)
            if entities:
                content["caption_entities"] = entities
        return self._say(content)

    async def send_media(self, kind: str, caption: str | None = None) -> dict[str, Any]:
        """Send a photo, document, voice note, video or sticker to the bot."""
        self._check_open()
        return self._say(self._media(kind, caption))

    async def tap(
        self, text: str, *, message_id: int | None = None, thread_id: int | None = None
    ) -> TapResult:
        """Tap the inline button with this text on the latest bot message that has it."""
        self._check_open()
        return await super().tap(text, message_id=message_id, thread_id=thread_id)

    async def block(self) -> None:
        """Block the bot: its sends fail with 403 and it gets my_chat_member "kicked"."""
        if not self.chat.blocked:
            self.chat.blocked = True
            self._member_update("member", "kicked")

    async def unblock(self) -> None:
        """Unblock the bot: it gets my_chat_member "member" and may write again."""
        if self.chat.blocked:
            self.chat.blocked = False
            self._member_update("kicked", "member")

    def _member_update(self, old: str, new: str) -> None:
        bot_user = self.world.user
        new_member: dict[str, Any] = {"user": bot_user, "status": new}
        if new == "kicked":
            new_member["until_date"] = 0
        old_member: dict[str, Any] = {"user": bot_user, "status": old}
        if old == "kicked":
            old_member["until_date"] = 0
        self.world.enqueue(
            "my_chat_member",
            {
                "chat": self.chat.summary,
                "from": self.user,
                "date": self.world.date(),
                "old_chat_member": old_member,
                "new_chat_member": new_member,
            },
        )

    def transcript(self, *, include_deleted: bool = True) -> list[TranscriptEntry]:
        """Return every message of the chat, bot's and customer's, edits applied."""
        return self._entries(None, include_deleted)

    def bot_messages(self) -> list[TranscriptEntry]:
        """Return the bot's messages that were not deleted."""
        return [entry for entry in self._entries(None, False) if entry.from_bot]

    def last_message(self) -> TranscriptEntry | None:
        """Return the bot's latest message that was not deleted (edits applied)."""
        for stored in reversed(self.chat.order):
            if stored.from_bot and not stored.deleted:
                return stored.entry()
        return None

    async def next_message(self, timeout: float = 5.0) -> TranscriptEntry:  # noqa: ASYNC109
        """Wait for the next bot message sent after this customer's last action."""
        return await self._next_bot_message(timeout)

    @property
    def reply_keyboard(self) -> dict[str, Any] | None:
        """Return the reply keyboard the bot currently shows in this chat."""
        return self.chat.reply_keyboard

    @property
    def chat_actions(self) -> list[str]:
        """Return the chat actions (typing, …) the bot sent here."""
        return list(self.chat.actions)


class Agent(Participant):
    """A member of a forum support group (a shop's support agent)."""

    async def send(
        self, text: str, *, thread_id: int | None = None, reply_to: int | None = None
    ) -> dict[str, Any]:
        """Post a text message in the group, optionally inside a topic."""
        return self._say(self._text(text), thread_id=thread_id, reply_to=reply_to)

    async def send_media(
        self, kind: str, caption: str | None = None, *, thread_id: int | None = None
    ) -> dict[str, Any]:
        """Post a photo, document, voice note, video or sticker in the group."""
        return self._say(self._media(kind, caption), thread_id=thread_id)

    async def edit(self, message_id: int, text: str) -> dict[str, Any]:
        """Edit one of this person's messages; the bot gets an edited_message update."""
        stored = self.chat.live(message_id)
        if stored is None or stored.message.get("from", {}).get("id") != self.user_id:
            raise LookupError(f"no message {message_id} of user {self.user_id} to edit")
        key = "text" if "text" in stored.message else "caption"
        new = {k: v for k, v in stored.message.items() if k not in (key, f"{key}_entities")}
        new[key] = text
        new["edit_date"] = self.world.date()
        stored.history.append(stored.message)
        stored.message = new
        self.chat.changed()
        self.world.enqueue("edited_message", new)
        return new


class ForumGroup:
    """A supergroup with forum topics where the bot is an administrator."""

    def __init__(self, world: BotWorld, chat: ChatState) -> None:
        self.world = world
        self.chat = chat
        self._agents: dict[int, Agent] = {}
        self._cursor = len(chat.order)

    @property
    def chat_id(self) -> int:
        """Return the group's chat id."""
        return self.chat.id

    @property
    def title(self) -> str:
        """Return the group's title."""
        return self.chat.title or ""

    @property
    def topics(self) -> dict[int, Topic]:
        """Return the topics by thread id."""
        return self.chat.topics

    def topic(self, name: str) -> Topic:
        """Return the topic with this name (the latest one if several)."""
        for topic in reversed(list(self.chat.topics.values())):
            if topic.name == name:
                return topic
        raise LookupError(f"no topic {name!r}; topics: {[t.name for t in self.topics.values()]}")

    def add_member(
        self,
        user_id: int,
        first_name: str = "Agent",
        *,
        username: str | None = None,
        last_name: str | None = None,
        language_code: str | None = None,
        status: str = "member",
    ) -> Agent:
        """Add a person to the group (status: member, administrator or creator)."""
        user = make_user(
            user_id,
            first_name,
            last_name=last_name,
            username=username,
            language_code=language_code,
        )
        self.world.users.setdefault(user_id, user)
        self.chat.members[user_id] = {"status": status, "user": user}
        agent = self._agents[user_id] = Agent(self.world, self.chat, user)
        return agent

    def set_bot_rights(self, status: str = "administrator", **rights: bool) -> None:
        """Make the bot an administrator with some rights off, or a plain member."""
        self.chat.members[self.world.id] = {
            "status": status,
            "user": self.world.user,
            "rights": rights,
        }

    def leave(self, user_id: int) -> None:
        """Mark a person as having left the group (they are no agent any more)."""
        self.chat.members[user_id]["status"] = "left"

    def agent(self, user_id: int) -> Agent:
        """Return a member added with add_member."""
        return self._agents[user_id]

    def _agent(self, who: Agent | int) -> Agent:
        if isinstance(who, Agent):
            return who
        if who not in self._agents:
            return self.add_member(who)
        return self._agents[who]

    async def post(
        self,
        agent: Agent | int,
        text: str,
        thread_id: int | None = None,
        *,
        reply_to: int | None = None,
    ) -> dict[str, Any]:
        """Post `text` as `agent` (an Agent or a user id), inside topic `thread_id` if given."""
        message = await self._agent(agent).send(text, thread_id=thread_id, reply_to=reply_to)
        self._cursor = len(self.chat.order)
        return message

    async def tap(
        self,
        agent: Agent | int,
        text: str,
        *,
        message_id: int | None = None,
        thread_id: int | None = None,
    ) -> TapResult:
        """Tap an inline button of a bot message in the group as `agent`."""
        result = await self._agent(agent).tap(text, message_id=message_id, thread_id=thread_id)
        self._cursor = len(self.chat.order)
        return result

    async def create_topic(
        self, name: str, *, by: Agent | int, icon_color: int = TOPIC_COLORS[0]
    ) -> Topic:
        """Create a topic as a member; the bot gets the forum_topic_created message."""
        agent = self._agent(by)
        thread_id = self.chat.next_message_id()
        topic = Topic(thread_id, name, icon_color)
        message = {
            "message_id": thread_id,
            "message_thread_id": thread_id,
            "from": agent.user,
            "chat": self.chat.summary,
            "date": self.world.date(),
            "is_topic_message": True,
            "forum_topic_created": {"name": name, "icon_color": icon_color},
        }
        self.chat.topics[thread_id] = topic
        self.chat.add(StoredMessage(message, from_bot=False, thread_id=thread_id))
        self.world.enqueue("message", message)
        return topic

    def transcript(
        self, thread_id: int | None = None, *, include_deleted: bool = True
    ) -> list[TranscriptEntry]:
        """Return the group's messages, or one topic's, edits applied."""
        return [
            s.entry()
            for s in self.chat.order
            if (include_deleted or not s.deleted)
            and (thread_id is None or s.thread_id == thread_id)
        ]

    def last_message(self, thread_id: int | None = None) -> TranscriptEntry | None:
        """Return the bot's latest live message in the group or in one topic."""
        for stored in reversed(self.chat.order):
            if (
                stored.from_bot
                and not stored.deleted
                and not stored.is_service
                and (thread_id is None or stored.thread_id == thread_id)
            ):
                return stored.entry()
        return None

    async def next_message(
        self,
        thread_id: int | None = None,
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> TranscriptEntry:
        """Wait for the next bot message in the group (or topic) after the last post/tap."""
        reader = Participant(self.world, self.chat, self.world.user)
        reader._cursor = self._cursor
        entry = await reader._next_bot_message(timeout, thread_id)
        self._cursor = reader._cursor
        return entry
