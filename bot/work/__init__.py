"""Running jobs: the work-queue contract (:mod:`.queue`), the one message protocol (:mod:`.protocol`) and the
engine-side loop that runs a batch and reports it (:mod:`.runner`). Backends implement :class:`.queue.WorkQueue`.

Nothing here imports discord; only :mod:`.runner` imports torch, and only inside the engine process.
"""
