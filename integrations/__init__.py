"""Shop platform adapters: verify webhooks and turn them into normalized ShopEvents.

Pure code (no database, no network, nothing from `bot.`). Look an adapter up by platform
name in `ADAPTERS`; see `integrations.base.PlatformAdapter` for the contract.
"""

from integrations.base import (
    AppUninstalled,
    CartUpdated,
    CheckoutStarted,
    CustomerDataRequest,
    CustomerRedact,
    CustomerRef,
    CustomerUpserted,
    LineItem,
    NotSupported,
    OrderCancelled,
    OrderPlaced,
    OrderRefunded,
    ParseContext,
    ParseError,
    PlatformAdapter,
    ProductUpserted,
    ProductViewed,
    ShopEvent,
    ShopRedact,
    load_json,
)
from integrations.generic import GenericAdapter, parse_storefront_cart
from integrations.shopify import ShopifyAdapter
from integrations.woocommerce import WooCommerceAdapter

ADAPTERS: dict[str, PlatformAdapter] = {
    adapter.name: adapter for adapter in (ShopifyAdapter(), WooCommerceAdapter(), GenericAdapter())
}

__all__ = [
    "ADAPTERS",
    "AppUninstalled",
    "CartUpdated",
    "CheckoutStarted",
    "CustomerDataRequest",
    "CustomerRedact",
    "CustomerRef",
    "CustomerUpserted",
    "LineItem",
    "NotSupported",
    "OrderCancelled",
    "OrderPlaced",
    "OrderRefunded",
    "ParseContext",
    "ParseError",
    "PlatformAdapter",
    "ProductUpserted",
    "ProductViewed",
    "ShopEvent",
    "ShopRedact",
    "load_json",
    "parse_storefront_cart",
]
