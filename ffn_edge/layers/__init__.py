"""FFN building blocks: specialised norms, Weight Alteration, temporal shift, the frame context."""

from .alteration_site import AlterationSite
from .context import FrameContext
from .specialised_norm import SpecialisedNorm
from .temporal_shift import TemporalShift, temporal_shift
from .weight_alteration import Altered, WeightAlteration

__all__ = [
    "AlterationSite",
    "Altered",
    "FrameContext",
    "SpecialisedNorm",
    "TemporalShift",
    "WeightAlteration",
    "temporal_shift",
]
