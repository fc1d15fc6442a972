// The drawing worker. Every remote video tile's canvas is handed over by the page
// (transferControlToOffscreen) and every decoded VideoFrame is transferred here: drawing a frame
// (its colour conversion, with software compositing the costliest step of showing it) runs on
// this thread, not the page's. Twice a second it tells the page how many frames each tile drew.
const tiles = new Map(); // canvas id -> { canvas, context, drawn }

onmessage = ({ data }) => {
  if (data.forget) {
    tiles.delete(data.forget);
    return;
  }
  if (data.canvas) {
    // A new tile, or the same tile's canvas re-created by the page: the count goes on.
    const drawn = tiles.get(data.id)?.drawn ?? 0;
    const context = data.canvas.getContext('2d', { alpha: false, desynchronized: true });
    tiles.set(data.id, { canvas: data.canvas, context, drawn });
    return;
  }
  const { id, frame } = data;
  const tile = tiles.get(id);
  if (tile) {
    if (tile.canvas.width !== frame.displayWidth || tile.canvas.height !== frame.displayHeight) {
      tile.canvas.width = frame.displayWidth;
      tile.canvas.height = frame.displayHeight;
    }
    tile.context.drawImage(frame, 0, 0);
    tile.drawn += 1;
  }
  frame.close();
};

setInterval(() => {
  if (tiles.size > 0) {
    postMessage(Object.fromEntries([...tiles].map(([id, tile]) => [id, tile.drawn])));
  }
}, 500);
