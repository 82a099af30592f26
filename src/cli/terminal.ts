/**
 * Characters a terminal may act on instead of showing: C0 controls (ESC starts escape
 * sequences, CR and BS overwrite), DEL, C1 controls (U+009B is CSI on many terminals), the
 * Unicode line and paragraph separators, and the bidirectional overrides, embeddings,
 * isolates and marks that reorder what is shown.
 */
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g

/**
 * `text` with every character a terminal could act on written as a JSON-style `\uXXXX`
 * escape, so that text from the bus (a topic, a CN, a drop detail) cannot move the cursor,
 * rewrite the screen or reorder a line. Applied to JSON text it keeps it valid JSON with the
 * same value (such characters appear only inside strings there).
 */
export function terminalSafe(text: string): string {
  return text.replace(UNSAFE, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)
}
