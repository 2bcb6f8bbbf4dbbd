"""*Stylize image*: a message context-menu command (right-click a message → Apps) that stylizes a picture
already in the chat — an attachment or an embed's picture — so nobody uploads it again.

It answers privately with a menu: which image (when the message has several), the quality, and a preset;
picking a preset starts a job through the ``/stylize`` path (same checks, limits, cooldown and decoding). The
menu's selects are ``DynamicItem``\\ s whose custom ids carry only the id of a row in
:class:`~bot.face.menu_picks.PickStore`: the images, the member and the channel are looked up there, so menus keep
working after a restart and a forged custom id can name nothing but an id.
"""

# No ``from __future__ import annotations``: discord.py reads the context menu's annotations at runtime.

import logging
import re
import time
from typing import Any
from urllib.parse import urlsplit

import discord
from discord import app_commands
from discord.ext import commands

from bot.errors import UserError
from bot.face.delivery import too_late
from bot.face.menu_picks import ImageLink, Pick, PickStore, new_pick_id
from bot.face.replies import warn
from bot.intake.download import RequestError, check_attachment

from .stylize import OUR_FAULT, StyleSlot, StylizeCog

log = logging.getLogger(__name__)

MENU_NAME = "Stylize image"
COG_NAME = "Stylize image menu"
MAX_OPTIONS = 25  # Discord's limit on a select's options
ANIMATED_SUFFIXES = (".gif", ".webp", ".png", ".apng")  # a GIF embed's "video" served as a picture
CONTENT = "content image"  # how refusals name the picture, as /stylize names its content image
NO_IMAGE = ("That message has no picture to stylize (no image attached, and no embed with a picture). Use it on "
            "a message with a picture, or upload one with /stylize.")
NO_PRESETS = "There are no presets to choose from here; use /stylize with a style image instead."
SERVERS_ONLY = "This bot works in servers only; please use Stylize image in a server channel."
EXPIRED = "This menu has expired; right-click the message → Apps → Stylize image to open a new one."
NOT_YOURS = "This menu belongs to the member who opened it; right-click the message → Apps → Stylize image."
ELSEWHERE = "This menu works only in the channel where it was opened."
NOT_OFFERED = "That choice is not on this menu; please pick one of the options shown."


class MenuSelect(discord.ui.DynamicItem[discord.ui.Select],
                 template=r"nst:menu:(?P<pick>[0-9a-f]{16}):(?P<part>image|quality|preset)"):
    """One of a menu's selects; ``part`` says which. Its choice reaches :meth:`ContextMenuCog.on_choice`."""

    def __init__(self, select: discord.ui.Select, pick_id: str, part: str) -> None:
        super().__init__(select)
        self.pick_id, self.part = pick_id, part

    @classmethod
    def build(cls, pick_id: str, part: str, options: list[discord.SelectOption], placeholder: str) -> "MenuSelect":
        select = discord.ui.Select(custom_id=f"nst:menu:{pick_id}:{part}", options=options[:MAX_OPTIONS],
                                   placeholder=placeholder)
        return cls(select, pick_id, part)

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item: discord.ui.Select,
                             match: re.Match[str]) -> "MenuSelect":
        return cls(item, match["pick"], match["part"])

    async def callback(self, interaction: discord.Interaction) -> Any:
        if not isinstance(self.item, discord.ui.Select):  # a menu's id on a button: a forged component
            return await warn(interaction, NOT_OFFERED)
        cog = interaction.client.get_cog(COG_NAME)
        await cog.on_choice(interaction, self.pick_id, self.part, list(self.item.values))


def message_images(message: discord.Message) -> list[ImageLink]:
    """The message's attachments, then its embeds' pictures (through Discord's media proxy), without repeats; a
    GIF embed's (Tenor, Giphy) animation first when the proxy serves it as an animated picture rather than a
    video clip, which the bot does not decode."""
    links = [ImageLink(a.url, a.filename, a.content_type, a.size) for a in message.attachments]
    for embed in message.embeds:
        animated = [embed.video] if _animated_picture(embed.video.proxy_url) else []
        for picture in (*animated, embed.image, embed.thumbnail):
            if picture.proxy_url and all(link.url != picture.proxy_url for link in links):
                name = urlsplit(picture.proxy_url).path.rsplit("/", 1)[-1] or "embed image"
                links.append(ImageLink(picture.proxy_url, name, None, 0))
    return links


def _animated_picture(url: str | None) -> bool:
    return bool(url) and urlsplit(url).path.lower().endswith(ANIMATED_SUFFIXES)


def jump_url(pick: Pick) -> str:
    return f"https://discord.com/channels/{pick.guild_id or '@me'}/{pick.channel_id}/{pick.message_id}"


def image_name(pick: Pick, index: int) -> str:
    return discord.utils.escape_markdown(pick.images[index].filename[:60])


class ContextMenuCog(commands.Cog, name=COG_NAME):
    def __init__(self, bot) -> None:
        self.bot = bot
        self.config = bot.config
        self.picks = PickStore(bot.config.storage.data_dir, max_open=bot.config.limits.max_menus_per_user)
        self.command = app_commands.ContextMenu(name=MENU_NAME, callback=self.open_menu)

    async def cog_load(self) -> None:
        self.bot.tree.add_command(self.command)
        self.bot.add_dynamic_items(MenuSelect)

    async def cog_unload(self) -> None:
        self.bot.tree.remove_command(self.command.name, type=self.command.type)
        self.bot.remove_dynamic_items(MenuSelect)
        self.picks.close()

    async def open_menu(self, interaction: discord.Interaction, message: discord.Message) -> None:
        """The context menu: check the message's pictures, remember them, and show the private menu."""
        try:
            if interaction.guild_id is None and not self.config.discord.allow_dms:
                raise UserError(SERVERS_ONLY)
            effective = self.bot.settings.settings_for(interaction.guild_id, interaction.channel_id)
            images, left_out = self._usable(message_images(message))
            if not self.bot.presets.all(interaction.guild_id):
                raise UserError(NO_PRESETS)
            quality, _, _ = effective.fill(None, None, None, style_given=True)  # the server's default level
            pick = Pick(new_pick_id(), interaction.user.id, interaction.guild_id, interaction.channel_id, message.id,
                        tuple(images[:MAX_OPTIONS]), 0, quality, time.time())
            closed = self.picks.add(pick)
            notes = [f"{left_out} file(s) in the message are not usable pictures and are not offered."] * bool(left_out)
            notes += [f"Your oldest open menu was closed: at most {self.picks.max_open} stay open."] * bool(closed)
            await interaction.response.send_message("\n".join([self._text(pick), *notes]),
                                                    view=self._view(pick), ephemeral=True)
            log.info("stylize menu %s opened by user %s on message %s (%d image(s))", pick.id, interaction.user.id,
                     message.id, len(pick.images))
        except UserError as error:
            await warn(interaction, str(error))
        except discord.HTTPException as error:  # too late, or the same event delivered twice: already answered
            if not too_late(interaction, error):
                log.info("stylize menu for user %s not shown: %s", interaction.user.id, error)
        except Exception:  # a bug: the traceback for the admins, a clear answer for the member
            log.exception("Stylize image from user %s failed", interaction.user.id)
            await warn(interaction, OUR_FAULT)

    async def on_choice(self, interaction: discord.Interaction, pick_id: str, part: str, values: list[str]) -> None:
        """A choice on a menu: another image or quality redraws it; a preset starts a job."""
        try:
            pick = self._own_pick(interaction, pick_id)
            value = values[0] if values else ""
            if part == "preset":
                return await self._start(interaction, pick, value)
            if part == "image":
                if not value.isdigit() or int(value) >= len(pick.images):
                    raise UserError(NOT_OFFERED)
                pick = self.picks.choose(pick, image=int(value))
            elif value not in self.config.quality:
                raise UserError(NOT_OFFERED)
            else:
                pick = self.picks.choose(pick, quality=value)
            await interaction.response.edit_message(content=self._text(pick), view=self._view(pick))
        except UserError as error:
            await warn(interaction, str(error))
        except discord.HTTPException as error:  # too late, or the same event delivered twice: already answered
            if not too_late(interaction, error):
                log.info("choice on stylize menu %s not answered: %s", pick_id, error)
        except Exception:  # a bug: the traceback for the admins, a clear answer for the member
            log.exception("a choice on stylize menu %s from user %s failed", pick_id, interaction.user.id)
            await warn(interaction, OUR_FAULT)

    def _own_pick(self, interaction: discord.Interaction, pick_id: str) -> Pick:
        """The menu's pick, if the press comes from the member who opened it, in the channel it was opened in."""
        pick = self.picks.get(pick_id)
        if pick is None:
            raise UserError(EXPIRED)
        if interaction.user.id != pick.user_id:
            raise UserError(NOT_YOURS)
        if (interaction.guild_id, interaction.channel_id) != (pick.guild_id, pick.channel_id):
            raise UserError(ELSEWHERE)
        return pick

    async def _start(self, interaction: discord.Interaction, pick: Pick, preset: str) -> None:
        """The /stylize path with the chosen picture as the content and the preset as the style."""
        stylize: StylizeCog = self.bot.get_cog(StylizeCog.__cog_name__)
        log.info("stylize menu %s: image %d with preset %r", pick.id, pick.image, preset[:40])
        await stylize.stylize(interaction, content=pick.chosen, slots=[StyleSlot(1, None, preset)],
                              quality=pick.quality, size=None, strength=None, preserve_colors=None)

    def _usable(self, links: list[ImageLink]) -> tuple[list[ImageLink], int]:
        """The pictures that pass the checks made before a download, and how many did not; when none passes,
        the reply /stylize would give for the first."""
        usable, refusals = [], []
        for link in links:
            try:
                check_attachment(link, self.config, CONTENT)
                usable.append(link)
            except RequestError as error:
                refusals.append(str(error))
        if not usable:
            raise UserError(refusals[0] if refusals else NO_IMAGE)
        return usable, len(refusals)

    def _text(self, pick: Pick) -> str:
        text = (f"🎨 **Stylize image** from [this message]({jump_url(pick)}), at **{pick.quality}** quality. "
                "Pick a preset to start; each preset you pick makes one image.")
        if len(pick.images) > 1:
            text += (f"\nThe message has {len(pick.images)} pictures; picture {pick.image + 1} "
                     f"(`{image_name(pick, pick.image)}`) is chosen — choose another below.")
        return text

    def _view(self, pick: Pick) -> discord.ui.View:
        view = discord.ui.View(timeout=None)
        if len(pick.images) > 1:
            view.add_item(MenuSelect.build(pick.id, "image", [
                discord.SelectOption(label=f"{index + 1}. {image.filename}"[:100], value=str(index),
                                     default=index == pick.image)
                for index, image in enumerate(pick.images)], "Which picture"))
        view.add_item(MenuSelect.build(pick.id, "quality", [
            discord.SelectOption(label=level.name[:100], description=level.description[:100] or None,
                                 value=level.name, default=level.name == pick.quality)
            for level in self.config.quality.values()], "Quality"))
        view.add_item(MenuSelect.build(pick.id, "preset", [
            discord.SelectOption(label=preset.label[:100], value=preset.name)
            for preset in self.bot.presets.all(pick.guild_id)], "Pick a preset to start"))
        return view


async def setup(bot) -> None:
    await bot.add_cog(ContextMenuCog(bot))
