"""``GET /limits``: what a submit may carry, so a client can refuse before uploading."""
from __future__ import annotations

import falcon

from .. import inputs
from ..config import Config
from .jobs import MAX_COMMENT, MAX_IMAGES


class LimitsResource:
    def __init__(self, config: Config) -> None:
        self.config = config

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {
            "max_executable_bytes": int(self.config["limits.max_executable_bytes"]),
            "min_duration_seconds": int(self.config["limits.min_duration_seconds"]),
            "max_duration_seconds": int(self.config["limits.max_duration_seconds"]),
            "default_duration_seconds": int(self.config["limits.default_duration_seconds"]),
            "max_input_bytes": inputs.MAX_INPUT_BYTES,
            "max_comment_chars": MAX_COMMENT,
            "max_presses": inputs.MAX_PRESSES,
            "max_images": MAX_IMAGES,
            "max_pins": inputs.MAX_PINS,
        }
