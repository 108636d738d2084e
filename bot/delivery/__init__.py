"""Delivery of the outbox: the Courier (dispatcher), send-time rules, rate limits, channels.

limiter = SlidingWindowLimiter(settings.dispatch.rate_per_second)
courier = Courier(sessions=sessions, channel=TelegramChannel(bots, limiter),
                  clock=clock, settings=settings)
await courier.run_once()        # one claim+send cycle (tests, the demo)
await courier.run_forever(stop)  # the service
"""
