"""The bot's slash commands, one cog per area; loaded as extensions in ``NSTBot.setup_hook``."""

EXTENSIONS = ("bot.cogs.stylize", "bot.cogs.context_menu", "bot.cogs.presets", "bot.cogs.info", "bot.cogs.settings")
