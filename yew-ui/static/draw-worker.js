// The drawing worker. Every remote video tile's canvas is handed over by the page
// (transferControlToOffscreen), and the call's worker transfers every decoded VideoFrame here
// over a channel the page opened between the two: drawing a frame (its colour conversion, with
// software compositing the costliest step of showing it) runs on this thread, neither the page's
// nor the call's. Twice a second it tells the call's worker how many frames each tile drew.
const tiles = new Map(); // canvas id -> { canvas, context, drawn }
let call = null; // the call worker's port: frames in, counts out

function frame({ data }) {
  if (data.forget) {
    tiles.delete(data.forget);
    return;
  }
  const { id, frame } = data;
  const tile = tiles.get(id);
  if (tile && tile.canvas) {
    if (tile.canvas.width !== frame.displayWidth || tile.canvas.height !== frame.displayHeight) {
      tile.canvas.width = frame.displayWidth;
      tile.canvas.height = frame.displayHeight;
    }
    tile.context.drawImage(frame, 0, 0);
    tile.drawn += 1;
  }
  frame.close();
}

onmessage = ({ data }) => {
  if (data.port) {
    // A new call: its frames come on this port (an earlier call's port is done).
    if (call) call.close();
    call = data.port;
    call.onmessage = frame;
    return;
  }
  if (data.canvas) {
    // A new tile, or the same tile's canvas re-created by the page: the count goes on.
    const drawn = tiles.get(data.id)?.drawn ?? 0;
    const context = data.canvas.getContext('2d', { alpha: false, desynchronized: true });
    tiles.set(data.id, { canvas: data.canvas, context, drawn });
  }
};

setInterval(() => {
  if (call && tiles.size > 0) {
    call.postMessage(Object.fromEntries([...tiles].map(([id, tile]) => [id, tile.drawn])));
  }
}, 500);
