"""The menus' store at its edges, found by mutation testing (docs/mutation-report.md): ids the menus' custom ids
can carry, a data dir made on first use, and a choice of quality that keeps the chosen picture."""

from __future__ import annotations

import time
from pathlib import Path

from bot.face.cogs.context_menu import MenuSelect
from bot.face.menu_picks import ImageLink, Pick, PickStore, new_pick_id


def test_pick_ids_are_16_random_hex_digits_that_a_menus_custom_id_carries() -> None:
    ids = {new_pick_id() for _ in range(50)}
    assert len(ids) == 50 and all(len(pick_id) == 16 and int(pick_id, 16) >= 0 for pick_id in ids)
    for pick_id in ids:
        assert MenuSelect.__discord_ui_compiled_template__.fullmatch(f"nst:menu:{pick_id}:quality")


def test_the_store_makes_its_folder_and_a_quality_choice_keeps_the_picture(tmp_path: Path) -> None:
    store = PickStore(tmp_path / "not" / "there" / "yet")
    images = tuple(ImageLink(f"https://cdn/{n}.png", f"{n}.png", None, 1) for n in range(3))
    opened = Pick(new_pick_id(), 1, 2, 3, 4, images, 0, "standard", time.time())
    store.add(opened)
    store.choose(opened, image=2)
    assert store.choose(store.get(opened.id), quality="fast").image == 2
    assert (store.get(opened.id).image, store.get(opened.id).quality) == (2, "fast")
    store.close()
