"""The Bot API methods the sandbox answers, with Telegram's validations and error texts.

Each method takes the bot's world and the call's parameters and returns the `result` object,
or raises ApiError. `METHODS` maps the lower-cased method name (Telegram ignores case) to
its canonical name and implementation.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from bot.sandbox import errors as e
from bot.sandbox.errors import ApiError, bad_request
from bot.sandbox.markup import EntityParseError, merge_detected, parse_formatted, sort_entities
from bot.sandbox.params import Params
from bot.sandbox.transcript import INLINE_ACTIONS
from bot.sandbox.world import BotWorld, ChatState, StoredMessage, Topic, Webhook

MAX_TEXT = 4096
MAX_CAPTION = 1024
MAX_CALLBACK_ANSWER = 200
TOPIC_COLORS = (7322096, 16766590, 13338331, 9367192, 16749490, 16478047)
CHAT_ACTIONS = frozenset(
    {
        "typing",
        "upload_photo",
        "record_video",
        "upload_video",
        "record_voice",
        "upload_voice",
        "upload_document",
        "choose_sticker",
        "find_location",
        "record_video_note",
        "upload_video_note",
    }
)
_COMMAND_RE = re.compile(r"[a-z0-9_]{1,32}")
_SECRET_RE = re.compile(r"[A-Za-z0-9_-]{1,256}")
_COPYABLE = (
    "text",
    "entities",
    "photo",
    "caption",
    "caption_entities",
    "contact",
    "document",
    "voice",
    "video",
    "video_note",
    "audio",
    "animation",
    "sticker",
)


@dataclass(frozen=True)
class Described:
    """A successful result that Telegram answers with a `description` as well."""

    result: Any
    description: str


Handler = Callable[[BotWorld, Params], Any | Awaitable[Any]]
METHODS: dict[str, tuple[str, Handler]] = {}


def method(name: str) -> Callable[[Handler], Handler]:
    """Register a Bot API method under its canonical name."""

    def register(func: Handler) -> Handler:
        """Add `func` to METHODS."""
        METHODS[name.lower()] = (name, func)
        return func

    return register


async def call(world: BotWorld, name: str, params: Params) -> Any:
    """Run method `name` (any letter case) for `world`; raise 404 for unknown methods."""
    entry = METHODS.get(name.lower())
    if entry is None:
        raise ApiError(404, e.NOT_FOUND)
    result = entry[1](world, params)
    if inspect.isawaitable(result):
        result = await result
    return result


# ------------------------------------------------------------------------------ helpers


def formatted(
    p: Params,
    text_key: str,
    entities_key: str,
    *,
    limit: int,
    empty: str | None,
    too_long: str,
) -> tuple[str | None, list[dict[str, Any]]]:
    """Parse a text or caption under parse_mode/entities and check its length.

    `empty` is the error for a missing text; None means the text is optional.
    """
    text = p.str(text_key)
    if not text:
        if empty is not None:
            raise bad_request(empty)
        return None, []
    explicit = p.json(entities_key)
    if explicit:
        entities = sort_entities(_check_entities(explicit))
        plain = text
    else:
        try:
            plain, entities = parse_formatted(text, p.str("parse_mode"))
        except EntityParseError as exc:
            raise bad_request(f"can't parse entities: {exc}") from None
        except KeyError:
            raise bad_request(f'unsupported parse_mode "{p.str("parse_mode")}"') from None
    if not plain.strip():
        if empty is not None:
            raise bad_request(empty)
        return None, []
    if len(plain) > limit:
        raise bad_request(too_long)
    return plain, merge_detected(plain, entities)


def _check_entities(entities: Any) -> list[dict[str, Any]]:
    if not isinstance(entities, list):
        raise bad_request("can't parse entities JSON object")
    checked = []
    for entity in entities:
        if not isinstance(entity, dict) or not {"type", "offset", "length"} <= entity.keys():
            raise bad_request('can\'t parse MessageEntity: Field "type" must be of type String')
        checked.append({k: v for k, v in entity.items() if v is not None})
    return checked


def text_content(text: str | None, entities: list[dict[str, Any]]) -> dict[str, Any]:
    """Return the text fields of a Message."""
    content: dict[str, Any] = {"text": text}
    if entities:
        content["entities"] = entities
    return content


def caption_content(caption: str | None, entities: list[dict[str, Any]]) -> dict[str, Any]:
    """Return the caption fields of a Message (empty when there is no caption)."""
    if caption is None:
        return {}
    content: dict[str, Any] = {"caption": caption}
    if entities:
        content["caption_entities"] = entities
    return content


def inline_keyboard(markup: Any) -> dict[str, Any]:
    """Validate an InlineKeyboardMarkup and return it normalized (nulls dropped)."""
    rows = markup.get("inline_keyboard") if isinstance(markup, dict) else None
    if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
        raise bad_request(
            'field "inline_keyboard" of the InlineKeyboardMarkup should be an Array of Arrays'
        )
    clean_rows = []
    for row in rows:
        clean_row = []
        for button in row:
            if not isinstance(button, dict) or not isinstance(button.get("text"), str):
                raise bad_request(
                    'can\'t parse inline keyboard button: Field "text" must be of type String'
                )
            clean = {k: v for k, v in button.items() if v is not None}
            actions = [k for k in INLINE_ACTIONS if k in clean]
            if not actions:
                raise bad_request(e.TEXT_BUTTON_IN_INLINE)
            if "callback_data" in clean:
                data = clean["callback_data"]
                if not isinstance(data, str) or not 1 <= len(data.encode("utf-8")) <= 64:
                    raise bad_request(e.BUTTON_DATA_INVALID)
            if "url" in clean and not _valid_button_url(clean["url"]):
                raise bad_request(e.BUTTON_URL_INVALID)
            if not clean["text"].strip():
                raise bad_request("BUTTON_TEXT_INVALID")
            clean_row.append(clean)
        if clean_row:
            clean_rows.append(clean_row)
    return {"inline_keyboard": clean_rows}


def _valid_button_url(url: Any) -> bool:
    if not isinstance(url, str) or not url or " " in url:
        return False
    match = re.match(r"([a-zA-Z][a-zA-Z0-9+.-]*)://([^/?#]+)", url)
    if match:
        return match.group(1).lower() in ("http", "https", "tg", "ton") and bool(match.group(2))
    return bool(re.match(r"[\w-]+(\.[\w-]+)+(/|$)", url))


def reply_markup(p: Params, *, inline_only: bool = False) -> tuple[dict | None, dict | None]:
    """Return (inline keyboard for the message, reply keyboard change for the chat)."""
    markup = p.json("reply_markup")
    if markup is None:
        return None, None
    if not isinstance(markup, dict):
        raise bad_request("can't parse reply keyboard markup JSON object")
    if "inline_keyboard" in markup:
        keyboard = inline_keyboard(markup)
        return (keyboard if keyboard["inline_keyboard"] else None), None
    if inline_only:
        raise bad_request("inline keyboard expected")
    if "keyboard" in markup:
        rows = markup["keyboard"]
        if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
            raise bad_request(
                'field "keyboard" of the ReplyKeyboardMarkup should be an Array of Arrays'
            )
        return None, markup
    if markup.get("remove_keyboard") or markup.get("force_reply"):
        return None, markup
    raise bad_request("can't parse reply keyboard markup JSON object")


def thread_of(chat: ChatState, p: Params) -> int | None:
    """Return the forum topic a message goes to, or raise "message thread not found"."""
    thread_id = p.int("message_thread_id")
    if not thread_id:
        return None
    if not chat.is_forum or thread_id not in chat.topics:
        raise bad_request("message thread not found")
    return thread_id


def reply_target(world: BotWorld, chat: ChatState, p: Params) -> StoredMessage | None:
    """Return the message being replied to, honouring allow_sending_without_reply."""
    parameters = p.json("reply_parameters")
    if isinstance(parameters, dict):
        message_id = parameters.get("message_id")
        allow = bool(parameters.get("allow_sending_without_reply"))
        if parameters.get("chat_id") not in (None, chat.id):
            chat = world.chat(parameters["chat_id"])
    else:
        message_id = p.int("reply_to_message_id")
        allow = p.bool("allow_sending_without_reply")
    if not message_id:
        return None
    target = chat.live(int(message_id))
    if target is None and not allow:
        raise bad_request("message to be replied not found")
    return target


def flood_check(world: BotWorld, chat: ChatState) -> None:
    """Apply the send limits for one new message to `chat`."""
    try:
        world.limiter.acquire(chat.id, is_group=chat.is_group, now=world.now())
    except ApiError:
        world.stats.rate_limited += 1
        raise


def post(
    world: BotWorld,
    chat: ChatState,
    p: Params,
    content: dict[str, Any],
    *,
    photo_source: str | None = None,
) -> StoredMessage:
    """Validate the common send options, apply flood control and store a bot message."""
    thread_id = thread_of(chat, p)
    target = reply_target(world, chat, p)
    inline, reply_keyboard = reply_markup(p)
    preview = p.json("link_preview_options")
    flood_check(world, chat)
    if isinstance(preview, dict) and preview and "text" in content:
        content["link_preview_options"] = preview
    if inline is not None:
        content["reply_markup"] = inline
    if reply_keyboard is not None:
        chat.reply_keyboard = None if reply_keyboard.get("remove_keyboard") else reply_keyboard
    stored = world.add_message(
        chat,
        world.user,
        content,
        from_bot=True,
        thread_id=thread_id,
        reply_to=target,
        photo_source=photo_source,
    )
    world.stats.sends += 1
    return stored


def edited(world: BotWorld, p: Params) -> StoredMessage:
    """Return the bot message an edit method targets, or raise Telegram's error."""
    if p.str("inline_message_id"):
        raise bad_request("MESSAGE_ID_INVALID")
    chat = world.writable_chat(p.chat_id())
    message_id = p.int("message_id")
    if not message_id:
        raise bad_request("message identifier is not specified")
    stored = chat.live(message_id)
    if stored is None:
        raise bad_request(e.MESSAGE_TO_EDIT_NOT_FOUND)
    if not stored.from_bot:
        raise bad_request("message can't be edited")
    return stored


def apply_edit(
    world: BotWorld,
    stored: StoredMessage,
    keys: tuple[str, ...],
    content: dict[str, Any],
    markup: dict[str, Any] | None,
) -> dict[str, Any]:
    """Replace `keys` and the inline keyboard of a message, refusing a no-op edit."""
    old = stored.message
    same_content = all(old.get(k) == content.get(k) for k in keys)
    if same_content and old.get("reply_markup") == markup:
        raise bad_request(e.NOT_MODIFIED)
    new = {k: v for k, v in old.items() if k not in keys and k != "reply_markup"}
    new.update({k: v for k, v in content.items() if v is not None})
    if markup is not None:
        new["reply_markup"] = markup
    new["edit_date"] = world.date()
    stored.history.append(old)
    stored.message = new
    return new


def require_forum(chat: ChatState) -> None:
    """Raise unless the chat is a forum supergroup."""
    if not chat.is_forum:
        raise bad_request("the chat is not a forum")


def topic_of(chat: ChatState, p: Params) -> Topic:
    """Return the forum topic named by message_thread_id."""
    require_forum(chat)
    topic = chat.topics.get(p.int("message_thread_id") or 0)
    if topic is None:
        raise bad_request("TOPIC_ID_INVALID")
    return topic


def service_message(
    world: BotWorld, chat: ChatState, thread_id: int | None, content: dict[str, Any]
) -> None:
    """Store a service message the bot caused (bots get no update for their own actions)."""
    world.add_message(chat, world.user, content, from_bot=True, thread_id=thread_id)


# ---------------------------------------------------------------------------------- methods


@method("getMe")
def get_me(world: BotWorld, p: Params) -> dict[str, Any]:
    """Return the bot's User object."""
    return {
        **world.user,
        "can_join_groups": True,
        "can_read_all_group_messages": False,
        "supports_inline_queries": False,
        "can_connect_to_business": False,
        "has_main_web_app": False,
    }


@method("logOut")
def log_out(world: BotWorld, p: Params) -> bool:
    """Accept a log-out (nothing to do in the sandbox)."""
    return True


@method("close")
def close(world: BotWorld, p: Params) -> bool:
    """Accept a close (nothing to do in the sandbox)."""
    return True


@method("sendMessage")
def send_message(world: BotWorld, p: Params) -> dict[str, Any]:
    """Send a text message."""
    chat = world.writable_chat(p.chat_id())
    text, entities = formatted(
        p, "text", "entities", limit=MAX_TEXT, empty=e.TEXT_EMPTY, too_long=e.TEXT_TOO_LONG
    )
    return post(world, chat, p, text_content(text, entities)).message


@method("sendPhoto")
def send_photo(world: BotWorld, p: Params) -> dict[str, Any]:
    """Send a photo by URL, file_id or upload."""
    chat = world.writable_chat(p.chat_id())
    photo, source = _photo(world, p)
    caption, entities = formatted(
        p,
        "caption",
        "caption_entities",
        limit=MAX_CAPTION,
        empty=None,
        too_long=e.CAPTION_TOO_LONG,
    )
    content: dict[str, Any] = {"photo": photo, **caption_content(caption, entities)}
    if p.bool("has_spoiler"):
        content["has_media_spoiler"] = True
    if p.bool("show_caption_above_media"):
        content["show_caption_above_media"] = True
    return post(world, chat, p, content, photo_source=source).message


def _photo(world: BotWorld, p: Params) -> tuple[list[dict[str, Any]], str]:
    value = p.get("photo")
    upload = p.files.get("photo")
    if isinstance(value, str) and value.startswith("attach://"):
        upload = p.files.get(value.removeprefix("attach://"))
        if upload is None:
            raise bad_request("wrong remote file identifier specified: can't unserialize it")
    if upload is not None:
        if not upload.data:
            raise bad_request("file must be non-empty")
        return world.new_photo(), f"upload:{upload.filename or 'photo'}"
    if not isinstance(value, str) or not value:
        raise bad_request("there is no photo in the request")
    if value in world.files:
        return world.files[value], value
    if re.match(r"https?://[^/\s]+", value):
        return world.new_photo(), value
    raise bad_request("wrong file identifier/HTTP URL specified")


@method("editMessageText")
def edit_message_text(world: BotWorld, p: Params) -> dict[str, Any]:
    """Edit the text of a bot message (omitting reply_markup removes the keyboard)."""
    stored = edited(world, p)
    text, entities = formatted(
        p, "text", "entities", limit=MAX_TEXT, empty=e.TEXT_EMPTY, too_long=e.TEXT_TOO_LONG
    )
    if "text" not in stored.message:
        raise bad_request("there is no text in the message to edit")
    markup, _ = reply_markup(p, inline_only=True)
    content = text_content(text, entities)
    content.setdefault("entities", None)
    return apply_edit(world, stored, ("text", "entities"), content, markup)


@method("editMessageCaption")
def edit_message_caption(world: BotWorld, p: Params) -> dict[str, Any]:
    """Edit the caption of a bot media message."""
    stored = edited(world, p)
    caption, entities = formatted(
        p,
        "caption",
        "caption_entities",
        limit=MAX_CAPTION,
        empty=None,
        too_long=e.CAPTION_TOO_LONG,
    )
    if "photo" not in stored.message:
        raise bad_request("there is no caption in the message to edit")
    markup, _ = reply_markup(p, inline_only=True)
    content = {"caption": caption, "caption_entities": entities or None}
    return apply_edit(world, stored, ("caption", "caption_entities"), content, markup)


@method("editMessageReplyMarkup")
def edit_message_reply_markup(world: BotWorld, p: Params) -> dict[str, Any]:
    """Replace or remove the inline keyboard of a bot message."""
    stored = edited(world, p)
    markup, _ = reply_markup(p, inline_only=True)
    return apply_edit(world, stored, (), {}, markup)


@method("deleteMessage")
def delete_message(world: BotWorld, p: Params) -> bool:
    """Delete a message (the bot's own or, in private chats and as admin, anyone's)."""
    chat = world.chat(p.chat_id())
    stored = chat.live(p.int("message_id") or 0)
    if stored is None:
        raise bad_request(e.MESSAGE_TO_DELETE_NOT_FOUND)
    stored.deleted = True
    return True


@method("answerCallbackQuery")
def answer_callback_query(world: BotWorld, p: Params) -> bool:
    """Answer a callback query once, within the timeout."""
    state = world.callbacks.get(p.str("callback_query_id") or "")
    if state is None or state.answered or world.now() - state.created_at > world.callback_timeout:
        raise bad_request(e.QUERY_TOO_OLD)
    text = p.str("text")
    if text and len(text) > MAX_CALLBACK_ANSWER:
        raise bad_request("MESSAGE_TOO_LONG")
    state.answered = True
    state.tap.record_answer(text, p.bool("show_alert"), p.str("url"))
    return True


def _source(world: BotWorld, p: Params, missing: str) -> StoredMessage:
    chat = world.chat(p.chat_id("from_chat_id"))
    stored = chat.live(p.int("message_id") or 0)
    if stored is None:
        raise bad_request(missing)
    return stored


@method("copyMessage")
def copy_message(world: BotWorld, p: Params) -> dict[str, int]:
    """Copy a message into a chat without a link to the original."""
    source = _source(world, p, "message to copy not found")
    chat = world.writable_chat(p.chat_id())
    content = {k: source.message[k] for k in _COPYABLE if k in source.message}
    if not content:
        raise bad_request("message can't be copied")
    if p.get("caption") is not None and "photo" in content:
        caption, entities = formatted(
            p,
            "caption",
            "caption_entities",
            limit=MAX_CAPTION,
            empty=None,
            too_long=e.CAPTION_TOO_LONG,
        )
        content.pop("caption", None)
        content.pop("caption_entities", None)
        content.update(caption_content(caption, entities))
    stored = post(world, chat, p, content, photo_source=source.photo_source)
    return {"message_id": stored.message_id}


@method("forwardMessage")
def forward_message(world: BotWorld, p: Params) -> dict[str, Any]:
    """Forward a message, keeping its origin."""
    source = _source(world, p, "message to forward not found")
    chat = world.writable_chat(p.chat_id())
    content = {k: source.message[k] for k in _COPYABLE if k in source.message}
    if not content:
        raise bad_request("message can't be forwarded")
    origin = source.message.get("forward_origin") or {
        "type": "user",
        "sender_user": source.message["from"],
        "date": source.message["date"],
    }
    content["forward_origin"] = origin
    return post(world, chat, p, content, photo_source=source.photo_source).message


@method("sendChatAction")
def send_chat_action(world: BotWorld, p: Params) -> bool:
    """Show a chat action such as "typing"."""
    chat = world.writable_chat(p.chat_id())
    action = p.str("action")
    if action not in CHAT_ACTIONS:
        raise bad_request("wrong parameter action in request")
    thread_of(chat, p)
    chat.actions.append(action)
    return True


def _commands_key(p: Params) -> str:
    scope = p.json("scope") or {"type": "default"}
    return json.dumps(scope, sort_keys=True) + "|" + (p.str("language_code") or "")


@method("setMyCommands")
def set_my_commands(world: BotWorld, p: Params) -> bool:
    """Store the bot's command list for a scope and language."""
    commands = p.json("commands")
    if not isinstance(commands, list) or len(commands) > 100:
        raise bad_request("can't parse commands JSON object")
    clean = []
    for command in commands:
        if not isinstance(command, dict):
            raise bad_request("can't parse BotCommand")
        name = str(command.get("command", "")).removeprefix("/")
        if not _COMMAND_RE.fullmatch(name):
            raise bad_request("BOT_COMMAND_INVALID")
        description = str(command.get("description", ""))
        if not 1 <= len(description) <= 256:
            raise bad_request("BOT_COMMAND_DESCRIPTION_INVALID")
        clean.append({"command": name, "description": description})
    world.commands[_commands_key(p)] = clean
    return True


@method("getMyCommands")
def get_my_commands(world: BotWorld, p: Params) -> list[dict[str, str]]:
    """Return the command list for a scope and language."""
    return world.commands.get(_commands_key(p), [])


@method("deleteMyCommands")
def delete_my_commands(world: BotWorld, p: Params) -> bool:
    """Forget the command list for a scope and language."""
    world.commands.pop(_commands_key(p), None)
    return True


@method("setChatMenuButton")
def set_chat_menu_button(world: BotWorld, p: Params) -> bool:
    """Set the menu button of a private chat or the default one."""
    chat_id = p.int("chat_id")
    if chat_id is not None:
        world.chat(chat_id)
    button = p.json("menu_button") or {"type": "default"}
    if not isinstance(button, dict) or button.get("type") not in (
        "default",
        "commands",
        "web_app",
    ):
        raise bad_request("can't parse menu button")
    world.menu_buttons[chat_id] = button
    return True


@method("getChatMenuButton")
def get_chat_menu_button(world: BotWorld, p: Params) -> dict[str, Any]:
    """Return the menu button of a private chat or the default one."""
    chat_id = p.int("chat_id")
    button = world.menu_buttons.get(chat_id) or world.menu_buttons.get(None)
    if not button or button.get("type") == "default":
        return {"type": "commands"}
    return button


@method("getChat")
def get_chat(world: BotWorld, p: Params) -> dict[str, Any]:
    """Return the ChatFullInfo of a chat."""
    chat = world.chat(p.chat_id())
    info = dict(chat.summary)
    info.update(
        {
            "accent_color_id": 0,
            "max_reaction_count": 11,
            "accepted_gift_types": {
                "unlimited_gifts": False,
                "limited_gifts": False,
                "unique_gifts": False,
                "premium_subscription": False,
                "gifts_from_channels": False,
            },
        }
    )
    if chat.type != "private":
        info["permissions"] = {"can_send_messages": True, "can_manage_topics": False}
    return info


def administrator(user: dict[str, Any]) -> dict[str, Any]:
    """Return a ChatMemberAdministrator with every right (as the sandbox bot has in groups)."""
    rights = (
        "can_manage_chat",
        "can_delete_messages",
        "can_manage_video_chats",
        "can_restrict_members",
        "can_promote_members",
        "can_change_info",
        "can_invite_users",
        "can_post_stories",
        "can_edit_stories",
        "can_delete_stories",
        "can_pin_messages",
        "can_manage_topics",
        "can_send_welcome_messages",
    )
    return {
        "status": "administrator",
        "user": user,
        "can_be_edited": False,
        "is_anonymous": False,
        **dict.fromkeys(rights, True),
    }


def chat_member(status: str, user: dict[str, Any]) -> dict[str, Any]:
    """Return a ChatMember object of the given status."""
    if status == "administrator":
        return administrator(user)
    if status == "creator":
        return {"status": "creator", "user": user, "is_anonymous": False}
    if status == "kicked":
        return {"status": "kicked", "user": user, "until_date": 0}
    return {"status": status, "user": user}


def bot_member(world: BotWorld, chat: ChatState) -> dict[str, Any]:
    """Return the bot's own ChatMember in a group: an administrator unless a test set less."""
    record = chat.members.get(world.id) or {"status": "administrator"}
    member = chat_member(record["status"], world.user)
    if record["status"] == "restricted":
        member.update({"is_member": True, "until_date": 0, "can_send_messages": True})
    member.update(record.get("rights") or {})
    return member


def require_topic_rights(world: BotWorld, chat: ChatState) -> None:
    """Raise Telegram's error when the bot may not manage the group's topics."""
    member = bot_member(world, chat)
    if member["status"] != "creator" and not member.get("can_manage_topics"):
        raise bad_request("not enough rights to manage topics")


@method("getChatMember")
def get_chat_member(world: BotWorld, p: Params) -> dict[str, Any]:
    """Return a member of a chat."""
    chat = world.chat(p.chat_id())
    user_id = p.int("user_id")
    if user_id is None:
        raise bad_request("user_id is empty")
    if user_id == world.id:
        if chat.type == "private":
            return chat_member("member", world.user)
        return bot_member(world, chat)
    if chat.type == "private":
        if user_id != chat.id:
            raise bad_request("user not found")
        return chat_member("member", world.users[user_id])
    member = chat.members.get(user_id)
    if member is not None:
        return chat_member(member["status"], member["user"])
    if user_id in world.users:
        return chat_member("left", world.users[user_id])
    raise bad_request("user not found")


@method("createForumTopic")
def create_forum_topic(world: BotWorld, p: Params) -> dict[str, Any]:
    """Create a forum topic; its thread id is the id of its service message."""
    chat = world.writable_chat(p.chat_id())
    require_forum(chat)
    require_topic_rights(world, chat)
    name = p.str("name") or ""
    if not name.strip():
        raise bad_request("TOPIC_TITLE_EMPTY")
    if len(name) > 128:
        raise bad_request("TOPIC_TITLE_TOO_LONG")
    color = p.int("icon_color") or TOPIC_COLORS[0]
    if color not in TOPIC_COLORS:
        raise bad_request("TOPIC_ICON_COLOR_INVALID")
    thread_id = chat.next_message_id()
    topic = Topic(thread_id, name, color, p.str("icon_custom_emoji_id"))
    created = {k: v for k, v in topic.as_forum_topic().items() if k != "message_thread_id"}
    message = {
        "message_id": thread_id,
        "message_thread_id": thread_id,
        "from": world.user,
        "chat": chat.summary,
        "date": world.date(),
        "is_topic_message": True,
        "forum_topic_created": created,
    }
    chat.topics[thread_id] = topic
    chat.add(StoredMessage(message, from_bot=True, thread_id=thread_id))
    return topic.as_forum_topic()


@method("editForumTopic")
def edit_forum_topic(world: BotWorld, p: Params) -> bool:
    """Rename a forum topic or change its icon."""
    chat = world.writable_chat(p.chat_id())
    topic = topic_of(chat, p)
    name = p.str("name")
    emoji = p.str("icon_custom_emoji_id")
    changes: dict[str, Any] = {}
    if name is not None and name != topic.name:
        if not name.strip() or len(name) > 128:
            raise bad_request("TOPIC_TITLE_EMPTY" if not name.strip() else "TOPIC_TITLE_TOO_LONG")
        changes["name"] = name
    if emoji is not None and emoji != (topic.icon_custom_emoji_id or ""):
        changes["icon_custom_emoji_id"] = emoji
    if not changes:
        raise bad_request("TOPIC_NOT_MODIFIED")
    topic.name = changes.get("name", topic.name)
    if "icon_custom_emoji_id" in changes:
        topic.icon_custom_emoji_id = changes["icon_custom_emoji_id"] or None
    service_message(world, chat, topic.thread_id, {"forum_topic_edited": changes})
    return True


def _set_closed(world: BotWorld, p: Params, closed: bool) -> bool:
    chat = world.writable_chat(p.chat_id())
    topic = topic_of(chat, p)
    if topic.closed == closed:
        raise bad_request("TOPIC_NOT_MODIFIED")
    topic.closed = closed
    key = "forum_topic_closed" if closed else "forum_topic_reopened"
    service_message(world, chat, topic.thread_id, {key: {}})
    return True


@method("closeForumTopic")
def close_forum_topic(world: BotWorld, p: Params) -> bool:
    """Close an open forum topic."""
    return _set_closed(world, p, True)


@method("reopenForumTopic")
def reopen_forum_topic(world: BotWorld, p: Params) -> bool:
    """Reopen a closed forum topic."""
    return _set_closed(world, p, False)


# ---------------------------------------------------------------------------------- updates


@method("setWebhook")
def set_webhook(world: BotWorld, p: Params) -> Described:
    """Set (or, with an empty URL, remove) the webhook and start delivering to it."""
    url = p.str("url") or ""
    if not url:
        return delete_webhook(world, p)
    if not re.match(r"https?://[^/\s:]+(:\d+)?(/|$)", url):
        raise bad_request("bad webhook: An HTTPS URL must be provided for webhook")
    secret = p.str("secret_token")
    if secret is not None and not _SECRET_RE.fullmatch(secret):
        raise bad_request("secret token contains unallowed characters")
    max_connections = p.int("max_connections") or 40
    if not 1 <= max_connections <= 100:
        raise bad_request("bad webhook: max_connections must be between 1 and 100")
    allowed = p.json("allowed_updates")
    if allowed is not None:
        world.allowed_updates = set(allowed) or None
    if p.bool("drop_pending_updates"):
        world.updates.clear()
    old = world.webhook
    same = old is not None and (old.url, old.secret_token) == (url, secret)
    world.webhook = Webhook(url, secret, max_connections, p.str("ip_address"))
    if world.delivery is not None:
        world.delivery.start(world)
    return Described(True, "Webhook is already set" if same else "Webhook was set")


@method("deleteWebhook")
def delete_webhook(world: BotWorld, p: Params) -> Described:
    """Remove the webhook so that getUpdates works again."""
    if p.bool("drop_pending_updates"):
        world.updates.clear()
    if world.webhook is None:
        return Described(True, "Webhook is already deleted")
    world.webhook = None
    if world.delivery is not None:
        world.delivery.stop(world)
    return Described(True, "Webhook was deleted")


@method("getWebhookInfo")
def get_webhook_info(world: BotWorld, p: Params) -> dict[str, Any]:
    """Return the WebhookInfo object."""
    if world.webhook is None:
        return {"url": "", "has_custom_certificate": False, "pending_update_count": world.pending}
    return world.webhook.info(world.pending, world.allowed_updates)


@method("getUpdates")
async def get_updates(world: BotWorld, p: Params) -> list[dict[str, Any]]:
    """Return pending updates, waiting up to `timeout` seconds for one (long polling)."""
    if world.webhook is not None:
        raise ApiError(409, e.WEBHOOK_ACTIVE)
    offset = p.int("offset") or 0
    limit = min(max(p.int("limit") or 100, 1), 100)
    timeout = max(p.int("timeout") or 0, 0)
    allowed = p.json("allowed_updates")
    if allowed is not None:
        world.allowed_updates = set(allowed) or None
    before = world.pending
    world.confirm(offset)
    if world.pending != before:
        world.touch()
    previous = world.poller
    if previous is not None and not previous.done():
        previous.set_exception(ApiError(409, e.TERMINATED_BY_OTHER_POLL))
    if not world.updates and timeout > 0:
        waiter = world.wait_update()
        world.poller = waiter
        try:
            async with asyncio.timeout(timeout):
                await waiter
        except TimeoutError:
            pass
        finally:
            if world.poller is waiter:
                world.poller = None
    updates = list(itertools.islice(world.updates, limit))
    if updates:
        world.touch()
    return updates
