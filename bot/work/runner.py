"""Running a batch of jobs on a loaded :class:`~nst_engine.transfer.Engine` and reporting it as protocol events.

Shared by every backend's engine side (the local engine process, ``nst-bot worker``), so a job behaves the same
wherever it runs. Imports torch through the engine; never import this module in the bot's event-loop process.
"""

from __future__ import annotations

import io
import logging
import traceback
from typing import Callable, Sequence

from nst_engine.animated_images import load_animation, save_animation
from nst_engine.errors import NSTError
from nst_engine.images import load_image, save_image
from nst_engine.recipe import Recipe
from nst_engine.transfer import BatchRequest, Engine

from .protocol import Done, Event, Failed, JobSpec, Progress

log = logging.getLogger(__name__)

UNEXPECTED = "The engine hit an unexpected error on this image; the admins can see the log."
NOT_SAVED = "The result could not be saved on the bot's disk; the admins can see the log."


def device_name() -> str:
    import torch

    return f"cuda ({torch.cuda.get_device_name(0)})" if torch.cuda.is_available() else "cpu"


def run_batch(engine: Engine, specs: Sequence[JobSpec], emit: Callable[[Event], None],
              should_stop: Callable[[str], bool]) -> None:
    """Run ``specs`` as one batch and emit one ``Done`` or ``Failed`` per job (``Progress`` on the way).

    A job cancelled inside a batch is reported at once while the others go on. If the batch fails as a whole
    (say, out of GPU memory), its jobs run again one by one, so an error is reported against the job that causes
    it and the others still get their pictures. ``ConnectionError`` (nobody left to report to) propagates.
    """
    if any(spec.frames > 1 for spec in specs):  # an animation always runs alone, whoever put the batch together
        for spec in specs:
            if spec.frames > 1:
                run_animation(engine, spec, emit, should_stop)
        stills = [spec for spec in specs if spec.frames == 1]
        return run_batch(engine, stills, emit, should_stop) if stills else None
    requests = [BatchRequest(spec.content, spec.styles, spec.options, spec.init or None) for spec in specs]
    iterations = [0] * len(specs)
    reported: set[int] = set()

    def on_progress(index: int, progress) -> None:
        iterations[index] = progress.iteration
        emit(Progress(specs[index].job_id, progress.iteration, progress.total, progress.eta,
                      progress.losses.get("total"), _png(progress.preview)))

    def stop(index: int) -> bool:
        if not should_stop(specs[index].job_id):
            return False
        if index not in reported and len(specs) > 1:  # tell the core now, not when the batch ends
            reported.add(index)
            emit(Done(specs[index].job_id, iterations[index], None, cancelled=True))
        return True

    try:
        results = engine.stylize_batch(requests, on_progress=on_progress, should_stop=stop)
    except ConnectionError:
        raise
    except Exception as error:
        remaining = [spec for index, spec in enumerate(specs) if index not in reported]
        if len(remaining) > 1:
            log.warning("a batch of %d jobs failed (%s); running them one by one", len(remaining), error)
            for spec in remaining:
                run_batch(engine, [spec], emit, should_stop)
            return
        if not isinstance(error, NSTError):  # a bug or a CUDA error: the admins get the traceback
            traceback.print_exc()
        message = str(error) if isinstance(error, NSTError) else UNEXPECTED
        for spec in remaining:
            emit(Failed(spec.job_id, message))
        return
    for index, (spec, result) in enumerate(zip(specs, results)):
        if index in reported:
            continue
        try:
            if result.error:
                raise NSTError(result.error)
            if not result.cancelled:
                save_image(result.image, spec.result,
                           Recipe(spec.options, style=spec.style, quality=spec.quality).text_chunks())
        except (NSTError, OSError) as error:
            log.warning("job %s: %s", spec.job_id, error)
            emit(Failed(spec.job_id, str(error) if isinstance(error, NSTError) else NOT_SAVED))
            continue
        emit(Done(spec.job_id, result.iterations, result.elapsed, result.cancelled, result.device,
                  result.batch_size, result.image.width, result.image.height,
                  "" if result.cancelled else spec.result))


def _png(image) -> bytes | None:
    if image is None:
        return None
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def run_animation(engine: Engine, spec: JobSpec, emit: Callable[[Event], None],
                  should_stop: Callable[[str], bool]) -> None:
    """One animated job: every frame stylised in turn (nst_engine's temporal coherence), the result written as an
    animated PNG with the input's timing and the recipe; ``Progress`` says which frame is under way."""
    def on_progress(progress) -> None:
        emit(Progress(spec.job_id, progress.iteration, progress.total, progress.eta, progress.losses.get("total"),
                      _png(progress.preview), progress.frame, progress.frames))

    try:
        animation = load_animation(spec.content, max_frames=spec.frames, what="content animation")
        styles = [load_image(path, what="style image") for path in spec.styles]
        result = engine.stylize_animation(animation, styles, spec.options, on_progress=on_progress,
                                          should_stop=lambda: should_stop(spec.job_id))
        if not result.cancelled:
            save_animation(result.animation, spec.result,
                           text=Recipe(spec.options, style=spec.style, quality=spec.quality).text_chunks())
    except ConnectionError:
        raise
    except Exception as error:  # noqa: BLE001 - reported against the job, as run_batch does
        if not isinstance(error, (NSTError, OSError)):
            traceback.print_exc()
        message = str(error) if isinstance(error, NSTError) else NOT_SAVED if isinstance(error, OSError) else UNEXPECTED
        return emit(Failed(spec.job_id, message))
    width, height = result.animation.size if result.animation else (0, 0)
    emit(Done(spec.job_id, result.iterations, result.elapsed, result.cancelled, result.device, 1, width, height,
              "" if result.cancelled else spec.result))
