"""Concepts, codes and units: the vocabulary, the unit registry and its readers (clinician spellings, UCUM), derived values."""
