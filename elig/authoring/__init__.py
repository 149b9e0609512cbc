"""Authoring tools: the language server (``elig lsp``) and the browser workbench (``elig serve``).

The last stage before the commands: it reads what the language, engine and report
stages produce and re-implements none of it.
"""
