#!/usr/bin/env python3
"""GIMP 3 plug-in: Filters ▸ Artistic ▸ Neural Style Transfer…, a thin front end to nst-bot's engine.

The dialog's fields, defaults and bounds come from ``nst-bot options`` (the engine's one options definition),
the run goes through ``nst_bridge`` (a subprocess of nst-bot, in nst-bot's own environment with torch), and
the result lands as a new layer above the source layer, scaled to it.
"""

import sys
import tempfile
from pathlib import Path

import gi

gi.require_version("Gimp", "3.0")
gi.require_version("GimpUi", "3.0")
from gi.repository import Gimp, GimpUi, Gio, GLib, GObject  # noqa: E402

import nst_bridge  # noqa: E402  (next to this file; GIMP puts the plug-in's folder on sys.path)

PROCEDURE = "plug-in-nst-style-transfer"
NO_PRESET = "none"
READWRITE = GObject.ParamFlags.READWRITE


def _property(option_name):
    return option_name.replace("_", "-")


def _choice(values, labels=None):
    choice = Gimp.Choice.new()
    for index, value in enumerate(values):
        label = (labels or {}).get(value, value)
        choice.add(value, index, label, label)
    return choice


class NeuralStyleTransfer(Gimp.PlugIn):
    """Registers one image procedure whose arguments mirror nst-bot's user options."""

    def do_query_procedures(self):
        return [PROCEDURE]

    def do_set_i18n(self, name):
        return False

    def do_create_procedure(self, name):
        procedure = Gimp.ImageProcedure.new(self, name, Gimp.PDBProcType.PLUGIN, self.run, None)
        procedure.set_image_types("RGB*, GRAY*")
        procedure.set_sensitivity_mask(Gimp.ProcedureSensitivityMask.DRAWABLE)
        procedure.set_menu_label("Neural Style Transfer…")
        procedure.add_menu_path("<Image>/Filters/Artistic")
        procedure.set_documentation("Repaint the layer in the style of another image",
                                    "Gatys neural style transfer on VGG19 features, run by nst-bot's engine. "
                                    "The result is added as a new layer.", name)
        procedure.set_attribution("nst-bot", "nst-bot", "2026")

        self.setup_error, options, presets = None, [], []
        try:
            executable = nst_bridge.find_executable()
            options, presets = nst_bridge.read_options(executable), nst_bridge.read_presets(executable)
        except nst_bridge.BridgeError as error:
            self.setup_error = str(error)  # still register, so the menu entry can explain what is missing

        procedure.add_file_argument("style-file", "Style image", "image whose look to copy",
                                    Gimp.FileChooserAction.OPEN, True, None, READWRITE)
        procedure.add_choice_argument("preset", "Or a preset", "one of nst-bot's preset styles",
                                      _choice([NO_PRESET, *presets], {NO_PRESET: "(use the style image)"}),
                                      NO_PRESET, READWRITE)
        self.option_names = [option["name"] for option in options if self._add_option(procedure, option)]
        return procedure

    @staticmethod
    def _add_option(procedure, option):
        """Add one engine option as a procedure argument; False for lists (style blend weights), which have
        no use with the dialog's single style image."""
        name, help_text = _property(option["name"]), option["help"]
        label = option["name"].replace("_", " ").capitalize()
        if option["choices"]:
            procedure.add_choice_argument(name, label, help_text, _choice(option["choices"]), option["default"],
                                          READWRITE)
        elif option["type"] == "int":
            procedure.add_int_argument(name, label, help_text, int(option["low"]), int(option["high"]),
                                       option["default"], READWRITE)
        elif option["type"] == "float":
            procedure.add_double_argument(name, label, help_text, option["low"], option["high"],
                                          option["default"], READWRITE)
        else:
            return False
        return True

    def run(self, procedure, run_mode, image, drawables, config, data):
        if self.setup_error:
            return self._fail(procedure, self.setup_error)
        if len(drawables) != 1 or not isinstance(drawables[0], Gimp.Layer):
            return self._fail(procedure, "select exactly one layer to stylise")
        if run_mode == Gimp.RunMode.INTERACTIVE:
            GimpUi.init("nst-style-transfer")
            dialog = GimpUi.ProcedureDialog.new(procedure, config, "Neural Style Transfer")
            dialog.fill(None)
            accepted = dialog.run()
            dialog.destroy()
            if not accepted:
                return procedure.new_return_values(Gimp.PDBStatusType.CANCEL, None)

        style_file, preset = config.get_property("style-file"), config.get_property("preset")
        if preset != NO_PRESET:
            style, source = None, preset
        elif style_file is not None and style_file.get_path():
            style, source = Path(style_file.get_path()), style_file.get_basename()
        else:
            return self._fail(procedure, "choose a style image or a preset")
        options = {name: config.get_property(_property(name)) for name in self.option_names}
        try:
            layer = self._stylize(image, drawables[0], style, preset if style is None else None, options)
        except nst_bridge.Cancelled:
            return procedure.new_return_values(Gimp.PDBStatusType.CANCEL, None)
        except nst_bridge.BridgeError as error:
            return self._fail(procedure, str(error))
        finally:
            Gimp.progress_end()
        layer.set_name(f"{drawables[0].get_name()} styled ({source})")
        Gimp.displays_flush()
        return procedure.new_return_values(Gimp.PDBStatusType.SUCCESS, None)

    @staticmethod
    def _stylize(image, source, style, preset, options):
        with tempfile.TemporaryDirectory(prefix="nst-gimp-") as work:
            content, output = Path(work) / "content.png", Path(work) / "styled.png"
            _export_layer(source, content)
            Gimp.progress_init("Neural style transfer")

            def report(event):
                eta = f", about {event['eta']:.0f} s left" if event.get("eta") is not None else ""
                Gimp.progress_set_text(f"Neural style transfer: {event['iteration']}/{event['total']}{eta}")
                Gimp.progress_update(event["fraction"])
                return True  # GIMP cancels a plug-in by ending its process; nst_bridge ties nst-bot to it

            nst_bridge.stylize(nst_bridge.find_executable(), content, output, style=style, preset=preset,
                               options=options, on_progress=report)
            image.undo_group_start()
            layer = Gimp.file_load_layer(Gimp.RunMode.NONINTERACTIVE, image, Gio.File.new_for_path(str(output)))
            image.insert_layer(layer, source.get_parent(), image.get_item_position(source))
            layer.scale(source.get_width(), source.get_height(), False)
            _, x, y = source.get_offsets()
            layer.set_offsets(x, y)
            image.undo_group_end()
        return layer

    @staticmethod
    def _fail(procedure, message):
        error = GLib.Error.new_literal(GLib.quark_from_string(PROCEDURE), message, 0)
        return procedure.new_return_values(Gimp.PDBStatusType.EXECUTION_ERROR, error)


def _export_layer(layer, path):
    """Write one layer, alone, as a PNG through GIMP's own exporter (any precision, alpha kept)."""
    scratch = Gimp.Image.new(layer.get_width(), layer.get_height(), layer.get_image().get_base_type())
    copy = Gimp.Layer.new_from_drawable(layer, scratch)
    scratch.insert_layer(copy, None, 0)
    copy.set_offsets(0, 0)
    Gimp.file_save(Gimp.RunMode.NONINTERACTIVE, scratch, Gio.File.new_for_path(str(path)), None)
    scratch.delete()


Gimp.main(NeuralStyleTransfer.__gtype__, sys.argv)
