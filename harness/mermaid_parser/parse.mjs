// Reads a Mermaid diagram on stdin and parses it with Mermaid itself (jsdom stands in for the browser
// Mermaid expects); prints {"ok": true, "type": ...} or {"ok": false, "error": ...}.
import { JSDOM } from "jsdom";
import { readFileSync } from "node:fs";
const dom = new JSDOM("<!doctype html><html><body></body></html>");
globalThis.window = dom.window;
globalThis.document = dom.window.document;
const { default: mermaid } = await import("mermaid");
const text = readFileSync(0, "utf8");
try {
  const result = await mermaid.parse(text);
  console.log(JSON.stringify({ ok: true, type: result.diagramType }));
} catch (error) {
  console.log(JSON.stringify({ ok: false, error: String(error.message || error) }));
  process.exitCode = 1;
}
