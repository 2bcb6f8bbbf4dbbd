"""The one kind of error whose message is shown to the requester as it is.

Everything the bot refuses for a reason the user can act on (a bad upload, a limit reached, a preset that does
not exist, a full disk) raises :class:`UserError`; the Discord face shows it with :func:`bot.face.replies.warn`.
Anything else is a bug and gets a traceback in the log.
"""

from __future__ import annotations


class UserError(Exception):
    """Why a request was refused, in words for the user."""
