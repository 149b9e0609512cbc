// A minimal VS Code client for the elig language server: it starts `elig lsp`
// (or the command in the setting elig.command) for *.elig files. Everything else
// (diagnostics, hover, completion, definition, outline, formatting, quick fixes)
// comes from the server.
"use strict";
const vscode = require("vscode");
const { LanguageClient } = require("vscode-languageclient/node");

let client;

function activate(context) {
  const [command, ...args] = vscode.workspace.getConfiguration("elig").get("command", ["elig", "lsp"]);
  client = new LanguageClient(
    "elig",
    "elig language server",
    { command, args },
    { documentSelector: [{ scheme: "file", language: "elig" }] },
  );
  context.subscriptions.push({ dispose: () => client && client.stop() });
  return client.start();
}

function deactivate() {
  return client ? client.stop() : undefined;
}

module.exports = { activate, deactivate };
