"""aiohttp routes: shop webhooks, the Telegram webhook, admin API, redirects, health, metrics."""
