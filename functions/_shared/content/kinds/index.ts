// The kinds the content module ships. Product modules import their own kind file next to these
// (a deck module: `import "../deck/kind.ts"`), which registers it.
export { checklist } from "./checklist.ts";
export { note } from "./note.ts";
export { getKind, registeredKinds, registerKind, requireKind, type ContentKind } from "./registry.ts";
