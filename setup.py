"""Ship migrations/ and locales/ inside the wheel, as bot/migrations and bot/locales."""

from pathlib import Path

from setuptools import find_packages, setup

# Every catalog folder is listed as a data package, so setuptools knows it ships on purpose.
LOCALE_PACKAGES = sorted(
    "bot.locales." + ".".join(folder.relative_to("locales").parts)
    for folder in Path("locales").glob("*/LC_MESSAGES")
    for folder in (folder.parent, folder)
)

setup(
    packages=[
        *find_packages(include=["bot*", "integrations*"]),
        "bot.migrations",
        "bot.migrations.versions",
        "bot.locales",
        *LOCALE_PACKAGES,
    ],
    package_dir={"bot.migrations": "migrations", "bot.locales": "locales"},
)
