"""The bot's slash commands, one cog per area; loaded as extensions in ``NSTBot.setup_hook``."""

EXTENSIONS = tuple(f"{__name__}.{cog}" for cog in ("stylize", "context_menu", "presets", "info", "settings"))
