"""One thread per camera stream: (for JPEG) encodes and fingerprints frames off the control loop.

Input:  PushedSample(t, (image,), enqueued) from the camera's bounded push queue.
Output: EncodedFrame(t, payload, enqueued, crc32) to the disk writer's queue, payload being the image
        itself (raw / lzf codecs: HDF5 compresses lzf inside the write, which releases the GIL) or JPEG bytes.
The hand-off to the disk writer waits for room (back-pressure), so when the disk is too slow the
loss shows up as counted drops at the push queue, never as a blocked producer.
"""
from __future__ import annotations

import logging
import threading

from collector.recorder.frames import encode_jpeg, frame_crc32
from collector.recorder.queues import EncodedFrame, SampleQueue
from collector.recorder.streams import StreamSpec

log = logging.getLogger(__name__)


class FrameWorker(threading.Thread):
    def __init__(self, spec: StreamSpec, inbox: SampleQueue, outbox: SampleQueue,
                 draining: threading.Event, abort: threading.Event, on_error):
        super().__init__(name=f"recorder-frames-{spec.name}", daemon=True)
        self.spec = spec
        self.inbox = inbox
        self.outbox = outbox
        self._draining = draining
        self._abort = abort
        self._on_error = on_error
        self._jpeg = spec.codec == "jpeg"
        self.encode_failures = 0

    def run(self) -> None:
        try:
            while not self._abort.is_set():
                item = self.inbox.get(timeout=0.05)
                if item is None:
                    if self._draining.is_set() and len(self.inbox) == 0:
                        return
                    continue
                (image,) = item.values
                try:
                    payload = encode_jpeg(image, self.spec.jpeg_quality) if self._jpeg else image
                except Exception as exc:  # one bad frame must not end the recording
                    self.encode_failures += 1
                    log.warning("stream %r: frame at t=%.6f not recorded: %s", self.spec.name, item.t, exc)
                    continue
                # CRC of the frame as stored: the JPEG bytes (40 KB, ~20x cheaper than the pixels;
                # the encoder is deterministic, so equal frames still give equal CRCs) or the pixels.
                crc = frame_crc32(payload)
                self.outbox.put_wait(EncodedFrame(item.t, payload, item.enqueued, crc), self._abort)
        except BaseException as exc:  # report, never die silently: the writer turns this into w.error
            self._on_error(exc)
