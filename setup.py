"""Ship migrations/ and locales/ inside the wheel, as bot/migrations and bot/locales."""

from setuptools import find_packages, setup

setup(
    packages=[
        *find_packages(include=["bot*", "integrations*"]),
        "bot.migrations",
        "bot.migrations.versions",
        "bot.locales",
    ],
    package_dir={"bot.migrations": "migrations", "bot.locales": "locales"},
)
