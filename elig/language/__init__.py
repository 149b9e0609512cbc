"""The protocol language: grammar loading, parser, syntax tree, canonical printer, formatter, highlighter and lint."""
