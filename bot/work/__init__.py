"""Running jobs: the work-queue contract (:mod:`.queue`), the one message protocol (:mod:`.protocol`) and the
engine-side loop that runs a batch and reports it (:mod:`.runner`). Backends implement :class:`.queue.WorkQueue`:
:mod:`.local` (one engine process on this machine) and :mod:`.redis_queue`, whose jobs :mod:`.worker` processes
(``nst-bot worker``) run on any machine.

Nothing here imports discord; only :mod:`.runner` imports torch, and only inside the engine process.
"""
