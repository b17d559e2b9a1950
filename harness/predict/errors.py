"""Why a prediction cannot be made here: no sweep to read the iteration law from, no law for the
cell and method, no probe of the backend's solver. A NotSupported (one line, exit 2, from the
command); a caller that times anyway catches this class alone."""

from __future__ import annotations

from harness.model.protocol import NotSupported


class CannotPredict(NotSupported):
    pass
