"""``/queue`` and ``/help``."""

from __future__ import annotations

import discord
from discord import app_commands
from discord.ext import commands

from bot.face.replies import fit
from bot.jobs.model import RUNNING
from bot.ops.terminal import format_seconds

QUEUE_LINES = 15


class InfoCog(commands.Cog, name="Info"):
    def __init__(self, bot: commands.Bot) -> None:
        self.bot = bot

    @app_commands.command(name="queue", description="Show the jobs waiting and running")
    async def queue(self, interaction: discord.Interaction) -> None:
        core = self.bot.core
        active = core.active_jobs()
        if not active:
            return await interaction.response.send_message(
                f"The queue is empty — `/stylize` starts right away.\n-# {engines(core)}", ephemeral=True)
        lines = []
        for entry in active[:QUEUE_LINES]:
            job = entry.job
            if job.state == RUNNING:
                total = entry.total or job.options.iterations
                step = f"frame {entry.frame}/{entry.frames}" if entry.frames > 1 else f"{entry.iteration}/{total}"
                state = f"running {step}, done in {format_seconds(entry.eta)}"
                place = "▶️"
            else:
                state = f"queued, starts in {format_seconds(core.eta_until_start(job.id))}"
                place = f"**{core.position(job.id)}.**"
            lines.append(f"{place} <@{job.user_id}> · {job.quality} · {state}")
        more = f"\n…and {len(active) - QUEUE_LINES} more" if len(active) > QUEUE_LINES else ""
        # The queue is the bot's; the per-member limit is this server's (/nst-settings limits).
        per_member = self.bot.settings.limits_for(interaction.guild_id).max_jobs_per_user
        footer = (f"\n-# {len(active)}/{self.bot.config.limits.max_queue} jobs · at most {per_member} per person · "
                  f"{engines(core)}")
        await interaction.response.send_message("\n".join(lines) + more + footer, ephemeral=True,
                                                allowed_mentions=discord.AllowedMentions.none())

    @app_commands.command(name="help", description="How to use the style transfer bot")
    async def help(self, interaction: discord.Interaction) -> None:
        config = self.bot.config
        limits = self.bot.settings.limits_for(interaction.guild_id)
        levels = "\n".join(f"- `{q.name}`: {q.size} px, {q.iterations} iterations — {q.description} (animations: "
                           f"{limits.animation_caps(q.name).frames} frames, {limits.animation_side(q)} px)"
                           for q in config.quality.values())
        presets = ", ".join(f"`{p.name}`" for p in self.bot.presets.all(interaction.guild_id)) or "none yet"
        text = (
            "**Neural style transfer** repaints your picture in the style of another.\n"
            "- `/stylize content:<image> style:<image>` or `preset:<name>` — options: `quality`, `size` "
            "(long side in px), `strength` (more or less style), `preserve_colors` (keep your colours); up to "
            "three styles with `style2`/`preset2`, `style3`/`preset3`, `weights` and `style_scale`.\n"
            "- Animated GIF, APNG or WebP: the result is animated too, the style steady where nothing moves (frames "
            "and size capped per quality level, below; longer ones are thinned evenly).\n"
            "- Right-click a message with a picture → **Apps** → **Stylize image**.\n"
            "- Buttons: **Cancel** on the progress message; on a result **Stronger** / **Weaker**, **Re-roll** (another "
            "seed), **Edit** (change values), **Upscale** (next quality level), **Info** and **Delete**.\n"
            "- `/styles` shows the presets; `/queue` shows what is waiting.\n"
            "- Admins (Manage Server): `/preset add name image`, `/preset remove name`; `/nst-settings` for this "
            "server's defaults, channels and limits.\n"
            f"**Quality levels**\n{levels}\n**Presets**: {presets}\n"
            f"-# Limits: images up to {limits.max_upload_bytes / 1e6:g} MB and {limits.max_pixels / 1e6:g} "
            f"megapixels · {limits.max_jobs_per_user} jobs each · one request every {limits.cooldown_seconds:g} s · "
            f"{engines(self.bot.core)}."
        )
        await interaction.response.send_message(fit(text), ephemeral=True)


def engines(core) -> str:
    """How many engines take jobs (the local process, or the Redis workers connected) and where they run."""
    count = core.work.workers()
    return f"{count} engine{'' if count == 1 else 's'} connected, on {core.device}"


async def setup(bot: commands.Bot) -> None:
    await bot.add_cog(InfoCog(bot))
