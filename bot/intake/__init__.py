"""Untrusted input turned into images and options: downloads (:mod:`.download`), the decoder sandbox
(:mod:`.decoder`), the quality levels and admin caps (:mod:`.options`, :mod:`.limits`), style blends and presets.

Nothing here imports discord: an upload arrives as anything with a URL, a file name, a size and a content
type (:class:`.download.Upload`), so the face hands its attachments over unchanged.
"""
