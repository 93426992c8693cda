"""Surgery: declared, parity-gated rewrites of Kokoro's torch modules."""
from kokoro_build.model.surgery.registry import (PassRecord, SurgeryError, SurgeryPass, apply_passes, make_pass,
                       register_pass, registered_passes)

__all__ = ["PassRecord", "SurgeryError", "SurgeryPass", "apply_passes", "make_pass",
           "register_pass", "registered_passes"]
from kokoro_build.model.surgery import passes  # noqa: F401,E402  (registers the built-in passes)
