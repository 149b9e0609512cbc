"""The one pint unit registry of elig, shared by the clinician's spellings (``units``) and UCUM (``ucum``).

Both readers build quantities in this registry, because quantities of two
registries cannot be compared; keeping it in a module of its own lets each
reader import it without importing the other.
"""

from __future__ import annotations

import pint

# One registry for the whole package. Clinical counting units (cells, breaths,
# beats) are dimensionless counts, so 10^9/L, 10^3/µL, /mm³ and cells/µL are one
# dimension (1/volume).
ureg = pint.UnitRegistry(
    autoconvert_offset_to_baseunit=True,
    case_sensitive=True,
    on_redefinition="ignore",
)
for _definition in (
    "cell = [] = cells",
    "breath = [] = breaths",
    "beat = [] = beats",
    "copy = [] = copies",
    # An enzyme's international unit is its own dimension: reading it as a bare number would make
    # U/L (ALT) and 10^9/L (a count) convertible, and a score recorded in "U" a number.
    "international_unit = [enzyme_activity] = IU",
    "unit_count = [] ",
    "mmHg_alias = millimeter_Hg = mm_Hg",
    # UCUM's {1.73_m2}: an eGFR normalised to body surface area is not a clearance.
    "bsa_1_73 = [body_surface_area_normalised]",
):
    ureg.define(_definition)
Q_ = ureg.Quantity


class UnitSyntaxError(ValueError):
    """A unit string that neither the clinician spellings nor pint can read."""
