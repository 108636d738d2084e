"""Charts as PNG images (Pillow): the lifecycle report's customers by stage.

The SVG of the same chart is `bot.lifecycle.lifecycle_svg`; this draws the same bars (reachable
blue, unreachable grey, with the blocked count in the label) for owners who want a picture to
paste into a chat or a slide. Labels are ASCII (stage names and numbers), so Pillow's bundled
font is enough and no font file has to ship.
"""

from __future__ import annotations

import io

from PIL import Image, ImageDraw, ImageFont

from bot.lifecycle import LifecycleReport

WIDTH, BAR, GAP, LEFT, TOP = 640, 28, 14, 110, 44
REACHABLE, UNREACHABLE, INK = (42, 122, 226), (200, 200, 200), (20, 20, 20)


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # a Pillow without FreeType: the small bitmap font
        return ImageFont.load_default()


def lifecycle_png(report: LifecycleReport) -> bytes:
    """Draw customers per stage as a PNG bar chart; return the file's bytes."""
    height = TOP + len(report.stages) * (BAR + GAP) + 20
    image = Image.new("RGB", (WIDTH, height), "white")
    draw = ImageDraw.Draw(image)
    body, title = _font(13), _font(15)
    draw.text((10, 12), f"Customers by stage, shop {report.shop_id}", fill=INK, font=title)
    most = max([*report.stages.values(), 1])
    scale = (WIDTH - LEFT - 170) / most
    for i, (name, count) in enumerate(report.stages.items()):
        y = TOP + i * (BAR + GAP)
        cannot = min(report.unreachable.get(name, 0), count)
        gone = report.blocked.get(name, 0)
        can = count - cannot
        draw.text((10, y + 7), name, fill=INK, font=body)
        if can:
            draw.rectangle((LEFT, y, LEFT + can * scale, y + BAR), fill=REACHABLE)
        if cannot:
            start = LEFT + can * scale
            draw.rectangle((start, y, start + cannot * scale, y + BAR), fill=UNREACHABLE)
        label = str(count)
        if cannot:
            label += f" ({cannot} unreachable" + (f", {gone} blocked)" if gone else ")")
        draw.text((LEFT + count * scale + 6, y + 7), label, fill=INK, font=body)
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()


FUNNEL_COLORS = {
    "audience": (200, 200, 200),
    "sent": (42, 122, 226),
    "clicked": (242, 169, 59),
    "orders": (59, 178, 115),
}


def funnel_png(report: dict) -> bytes:
    """Draw a campaign's funnel per variant (audience, sent, clicked, orders) as a PNG.

    Labels are ASCII (variant names are Latin by rule; the campaign is named by its id), so
    the bundled font is enough.
    """
    from bot.campaigns import funnel_rows

    rows = funnel_rows(report)
    bar, gap = 18, 26
    height = TOP + sum(len(steps) * bar + gap for _, steps in rows) + 10
    image = Image.new("RGB", (WIDTH + 80, height), "white")
    draw = ImageDraw.Draw(image)
    body, title = _font(12), _font(15)
    draw.text(
        (10, 12), f"Campaign {report.get('id', '')}: funnel per variant", fill=INK, font=title
    )
    most = max([value for _, steps in rows for _, value in steps] + [1])
    scale = (WIDTH - LEFT - 90) / most
    y = TOP
    for label, steps in rows:
        draw.text((10, y + 2), label, fill=INK, font=body)
        for step, value in steps:
            if value:
                draw.rectangle(
                    (LEFT + 40, y, LEFT + 40 + value * scale, y + bar - 3),
                    fill=FUNNEL_COLORS[step],
                )
            draw.text((LEFT + 46 + value * scale, y + 2), f"{step} {value}", fill=INK, font=body)
            y += bar
        y += gap
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()


__all__ = ["funnel_png", "lifecycle_png"]
