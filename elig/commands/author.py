"""``elig lsp`` and ``elig serve``: the authoring tools (elig.authoring) started from the command line."""

from __future__ import annotations

import click

from elig.commands.files import base_vocabulary, vocabulary_option


@click.command("lsp")
@click.option("--stdio", is_flag=True, help="Talk over standard input and output (the default and only transport).")
@vocabulary_option
def lsp_command(stdio, vocabulary_files):
    """Run the elig language server for editors (LSP over standard input and output).

    Editors start it themselves: see docs/editors.md for VS Code, Neovim and Emacs.
    """
    from elig.authoring.lsp import serve_stdio

    serve_stdio(base_vocabulary(vocabulary_files))


@click.command("serve")
@click.argument("protocol", required=False, type=click.Path(exists=True, dir_okay=False))
@click.option("--port", type=click.IntRange(0, 65535), default=0, show_default=True,
              help="Port on 127.0.0.1; 0 picks a free one.")
@click.option("--as-of", "as_of", metavar="YYYY-MM-DD", help="Evaluation date shown first (default: today).")
@click.option("--examples", type=click.Path(exists=True, file_okay=False),
              help="Folder with patients/ and fhir/ example files (default: the checkout's examples/).")
@vocabulary_option
def serve_command(protocol, port, as_of, examples, vocabulary_files):
    """Start the workbench: a page on 127.0.0.1 to write a protocol and try it on patients.

    Opens PROTOCOL in the editor (default: a small starter protocol). Prints the
    address; stop it with Ctrl+C. Uploaded patient files stay in memory only.
    """
    import socket
    from pathlib import Path

    import uvicorn

    from elig.authoring.workbench.app import Workbench, create_app
    from elig.engine.evaluator import as_date

    try:
        date = as_date(as_of) if as_of else None
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--as-of") from None
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
        sock.listen(128)  # connections wait in the queue from now on, even before uvicorn has started
    except OSError as exc:
        sock.close()
        raise click.UsageError(f"cannot listen on 127.0.0.1:{port}: {exc.strerror or exc}; "
                               f"choose another --port, or 0 for a free one") from None
    address = f"http://127.0.0.1:{sock.getsockname()[1]}/"
    vocabulary = base_vocabulary(vocabulary_files)
    app = create_app(Workbench(Path(examples) if examples else None, Path(protocol) if protocol else None, date,
                               vocabulary))
    click.echo(f"elig workbench: {address}  (Ctrl+C stops it)", err=False)
    import sys

    sys.stdout.flush()
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:  # Ctrl+C is how a workbench is stopped, not an error
        pass
    click.echo("elig workbench stopped; uploaded files are forgotten")
