"""The Discord face: the only package that imports discord.

The bot class (:mod:`.app`), the slash commands (:mod:`.cogs`), result buttons and the Edit form, the status
and result messages, and the replies. It turns interactions into requests for :mod:`bot.intake` and the job
core (:mod:`bot.jobs`), and turns the core's events back into Discord messages.
"""
