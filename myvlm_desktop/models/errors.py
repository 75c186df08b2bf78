"""The one error the app raises for a model it cannot find or download."""

from __future__ import annotations


class ModelUnavailable(Exception):
    """A model's weights are not on disk and cannot be fetched now.

    The message names the model, what is missing, where the app looked and what the user can do;
    callers show it as it is and carry on with what they have (a fallback engine, or no captions).
    """

    def __init__(self, model: str, missing: str, how_to_get: str, looked_in: list[str] | None = None):
        self.model, self.missing, self.how_to_get = model, missing, how_to_get
        self.looked_in = list(looked_in or [])
        where = f" (looked in: {', '.join(self.looked_in)})" if self.looked_in else ""
        super().__init__(f"{model}: {missing}{where}. {how_to_get}")
