// The call's worker: the call engine, the transport, encoding, encryption and decoding run here,
// off the page's thread (yew-ui/src/services/call/). It loads the same WebAssembly as the page;
// its main() sees no window and runs the worker's side. Messages that arrive while it loads are
// kept here, in order, for it.
self.videocallQueued = [];
self.onmessage = (event) => self.videocallQueued.push(event);
import("/yew_ui.js").then(({ default: init }) => init({ module_or_path: "/yew_ui_bg.wasm" }));
