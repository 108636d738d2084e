"""`python -m bot.sandbox`: the same as `nudge sandbox`."""

from bot.cli.sandbox import sandbox

if __name__ == "__main__":
    sandbox(prog_name="python -m bot.sandbox")
