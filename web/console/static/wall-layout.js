// Wall layouts: how many 16:9 tiles go on a screen, and how large.
//
//   auto    every tile, in the column count that shows them largest
//   1       one tile at a time (pages)
//   2x2 3x3 4x4   fixed grids of 4, 9 or 16 tiles (pages)
//   focus   one large tile with the others in a strip below it
//
// On a phone (a narrow screen) the wall is one scrolling column whatever the layout.

export const LAYOUTS = ['auto', '1', '2x2', '3x3', '4x4', 'focus'];

// NARROW_PX is the width below which the wall is one scrolling column.
export const NARROW_PX = 700;

// STRIP_MAX is the most tiles in one row of the focus layout's strip.
const STRIP_MAX = 6;

const RATIO = 16 / 9;

// perPage returns how many tiles one page of a layout holds (Infinity: all).
export function perPage(layout) {
  switch (layout) {
    case '1':
      return 1;
    case '2x2':
      return 4;
    case '3x3':
      return 9;
    case '4x4':
      return 16;
    default:
      return Infinity;
  }
}

// fit returns the largest width of 16:9 tiles in cols columns and rows rows within w × h.
function fit(cols, rows, w, h, gap) {
  return Math.min((w - gap * (cols - 1)) / cols, ((h - gap * (rows - 1)) / rows) * RATIO);
}

// plan returns the grid for n tiles shown at once in an area of w × h pixels with gap between
// tiles: cols, the tile width (tileW), and for the focus layout the strip's tile width
// (stripW) and columns; narrow is true for a phone's single column.
export function plan(layout, n, w, h, gap) {
  if (w < NARROW_PX) return { narrow: true, cols: 1, tileW: Math.floor(w), stripW: 0 };
  if (n <= 0) return { narrow: false, cols: 1, tileW: Math.floor(w), stripW: 0 };
  if (layout === 'focus' && n > 1) {
    const k = Math.min(n - 1, STRIP_MAX);
    const rows = Math.ceil((n - 1) / k);
    // the focus tile spans the strip's width: k·s + (k−1)·gap wide, its height 9/16 of that,
    // and the strip's rows of s-wide tiles below it.
    const byHeight = (h - gap * rows - ((k - 1) * gap) / RATIO) / ((k + rows) / RATIO);
    const byWidth = (w - gap * (k - 1)) / k;
    const s = Math.max(40, Math.floor(Math.min(byHeight, byWidth)));
    return { narrow: false, cols: k, tileW: s, stripW: s, focusW: k * s + (k - 1) * gap };
  }
  const fixed = perPage(layout);
  if (Number.isFinite(fixed)) {
    // the cells keep their size on a page that is not full, as on a video wall controller.
    const side = Math.round(Math.sqrt(fixed));
    return { narrow: false, cols: side, tileW: Math.max(160, Math.floor(fit(side, side, w, h, gap))), stripW: 0 };
  }
  let cols = 1;
  let best = 0;
  for (let c = 1; c <= n; c++) {
    const width = fit(c, Math.ceil(n / c), w, h, gap);
    if (width > best) {
      best = width;
      cols = c;
    }
  }
  return { narrow: false, cols, tileW: Math.max(160, Math.floor(best)), stripW: 0 };
}
