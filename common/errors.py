"""One error tree: permanent errors fail the job, transient errors ask for redelivery."""

from __future__ import annotations


class ClosetError(Exception):
    """Base of every error the pipeline raises on purpose."""

    code: str = "stage_failed"
    retryable: bool = False

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class ConfigurationError(ClosetError):
    """A setting is invalid or a model file is missing: raised at startup, never per request."""

    code = "configuration_error"


class PermanentError(ClosetError):
    """The input or the request can never succeed: ack the message and fail the job."""


class InvalidImage(PermanentError):
    code = "invalid_image"


class UnsupportedFormat(PermanentError):
    code = "unsupported_format"


class ImageTooLarge(PermanentError):
    code = "image_too_large"


class TooManyPixels(PermanentError):
    code = "too_many_pixels"


class ImageTooSmall(PermanentError):
    code = "image_too_small"


class NoGarmentFound(PermanentError):
    code = "no_garment_found"


class InvalidRequest(PermanentError):
    """The upload's metadata asks for something impossible (a bad option, a missing field)."""

    code = "invalid_request"


class NoSubjectFound(PermanentError):
    """The cut-out of a studio photo is empty: nothing to place on a backdrop."""

    code = "no_subject_found"


class ItemNotFound(PermanentError):
    """The named closet item does not exist, is not finished, or belongs to another user."""

    code = "item_not_found"


class NoPersonFound(PermanentError):
    code = "no_person_found"


class BackendRefused(PermanentError):
    """A model looked at the request and declined it (moderation, safety, policy)."""

    code = "backend_refused"


class CaptionInvalid(PermanentError):
    """The caption model answered something that is not a caption of the asked shape."""

    code = "caption_invalid"


class BackendUnavailable(PermanentError):
    """A remote backend refused for good (bad key, no credit, bad request)."""

    code = "backend_unavailable"


class TransientError(ClosetError):
    """Worth another try later (5xx, 429, time-out): raise so Pub/Sub redelivers with backoff."""

    code = "backend_unavailable"
    retryable = True


ERROR_CODES: dict[str, str] = {
    "invalid_image": "The upload is not a readable image (empty, truncated or not an image).",
    "unsupported_format": "The image format is not on the allow-list (JPEG, PNG, WebP, GIF).",
    "image_too_large": "The upload is larger than the byte limit.",
    "too_many_pixels": "The image has more pixels than the pixel limit.",
    "image_too_small": "The image is smaller than the minimum side.",
    "no_garment_found": "No garment was found in the image.",
    "no_subject_found": "The studio photo's cut-out is empty: no subject to place.",
    "invalid_request": "The upload's metadata is invalid (a missing or unknown option).",
    "item_not_found": "The named closet item does not exist, is not finished, or is not yours.",
    "no_person_found": "The person photo shows no person the try-on can dress.",
    "backend_unavailable": "A model backend cannot serve the request (bad key, no credit).",
    "backend_refused": "A model refused the request (content moderation or safety).",
    "caption_invalid": "The caption model's answer did not parse as a caption.",
    "stage_failed": "A stage kept failing and its message was dead-lettered.",
    "timeout": "The job made no progress for too long (stuck-job watchdog).",
}
