"""Patient records: the record model, the native and FHIR readers, and dates."""
