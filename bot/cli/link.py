"""`nudge link`: the Telegram deep link that links a customer's chat."""

from __future__ import annotations

from typing import Any

import click

from bot.cli.common import (
    RECORD_ID,
    NotFound,
    UsageProblem,
    emit,
    json_option,
    run,
    settings_from,
    utc_now,
    with_database,
)


@click.command("link")
@click.option("--shop", "shop_id", type=RECORD_ID, required=True)
@click.option("--customer", "customer_id", type=RECORD_ID, default=None)
@click.option("--email", default=None)
@click.option("--phone", default=None)
@json_option
@click.pass_context
def link(
    ctx: click.Context,
    shop_id: int,
    customer_id: int | None,
    email: str | None,
    phone: str | None,
    as_json: bool,
) -> None:
    """Print the Telegram deep link that links a customer's chat (for e-mails, order pages)."""
    from bot.linking import deep_link, make_link_token
    from bot.store.customers import find_by_email, find_by_phone, get_customer
    from bot.store.shops import find_shop
    from integrations.fields import e164

    if sum(value is not None for value in (customer_id, email, phone)) != 1:
        raise UsageProblem("give exactly one of --customer, --email, --phone")
    settings = settings_from(ctx)
    now = utc_now()

    async def work(sessions: Any) -> tuple[Any, Any]:
        async with sessions() as session:
            shop = await find_shop(session=session, shop_id=shop_id)
            if shop is None:
                return None, None
            if customer_id is not None:
                found = await get_customer(
                    session=session, shop_id=shop_id, customer_id=customer_id
                )
            elif email is not None:
                found = await find_by_email(session=session, shop_id=shop_id, email=email)
            else:
                normalized = e164(phone, shop.country) or phone or ""
                found = await find_by_phone(session=session, shop_id=shop_id, phone=normalized)
            return shop, found

    shop, found = run(with_database(settings, work))
    if shop is None:
        raise NotFound(f"no shop with id {shop_id}")
    if found is None:
        raise NotFound(f"no such customer in shop {shop_id}")
    if found.redacted_hash is not None:
        raise UsageProblem(f"customer {found.id} was redacted; no link can be made")
    token = make_link_token(
        secret_key=settings.secret_key.get_secret_value(),
        shop_id=shop_id,
        customer_id=found.id,
        now=now,
    )
    record = {
        "shop_id": shop_id,
        "customer_id": found.id,
        "token": token,
        "deep_link": deep_link(shop.bot_username, token),
    }
    emit(as_json, record, lambda: click.echo(record["deep_link"]))
