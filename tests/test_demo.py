"""`nudge demo` tells the whole story in each locale, quickly, and exits 0."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

EXPECTED = {
    "en": [
        "Hello, Emma! You are subscribed",
        "you left something in your cart",
        "Not interested",
        "Got it: no more reminders about “Dresses”",
        "/settings",
    ],
    "ru": [
        "Здравствуйте, Ольга!",
        "вы кое-что оставили в корзине",
        "Не интересует",
        "Поняли: больше не будем напоминать о товарах из категории «Кофе»",
        "Вернуть как было",
    ],
    "uk": [
        "Вітаємо, Олено!",
        "Олено, ви дещо залишили в кошику",
        "і ще 2 товари",
        "Зрозуміли: більше не нагадуватимемо про товари з категорії «Аксесуари»",
        "Повернути як було",
        "Вітаємо, Тарасе!",
    ],
    "pl": [
        "Cześć, Anno!",
        "Anno, w Twoim koszyku coś zostało",
        "Nie interesuje mnie",
        "Rozumiemy: nie będziemy już przypominać o produktach z kategorii „Sukienki”",
        "Cześć, Piotrze!",
    ],
}


@pytest.mark.parametrize("locale", ["en", "ru", "uk", "pl"])
def test_demo_runs_the_story(locale, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUDGE_")}
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "bot", "demo", "--locale", locale],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr[-3000:]
    assert elapsed < 30
    out = result.stdout
    for text in EXPECTED[locale]:
        assert text in out, text
    assert "GET /r/… → 302" in out
    assert "orders                     1" in out
    assert "conversion                 33.3%" in out
    assert list(tmp_path.iterdir()) == [], "the demo leaves nothing behind"
