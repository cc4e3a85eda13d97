"""A FHIR R4 endpoint at ``/fhir/R4`` (gematik ISiK "Terminplanung" where it applies).

Pure builders turn Konsil's domain (specialties, specialists, computed free slots, bookings)
into resources validated by the ``fhir.resources`` R4B models (wire-compatible with R4 for the
resources used here); thin routes call the same services as the JSON API. See docs/fhir.md.
"""
