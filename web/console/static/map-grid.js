// The map's plain background, for a site with no tile server: latitude and longitude lines at
// a round step for the view, labelled along the bottom and left edges (clear of the corners). Drawn by Leaflet (loaded
// as the global L before the page's modules) in a pane of its own under the markers.

// STEPS are the grid's spacings in degrees, widest first.
const STEPS = [30, 10, 5, 2, 1, 0.5, 0.2, 0.1, 0.05, 0.02, 0.01, 0.005, 0.002, 0.001, 0.0005, 0.0002, 0.0001];
// The grid has at least MIN_LINES lines across the shorter side of the view.
const MIN_LINES = 3;
const MAX_LINES = 80;
// Labels keep LABEL_MARGIN px from the view's ends, and the left ones clear the zoom buttons
// (CONTROLS_HEIGHT px from the top).
const LABEL_MARGIN = 36;
const CONTROLS_HEIGHT = 90;

// gridStep returns the widest step that draws at least MIN_LINES lines over span degrees.
export function gridStep(span) {
  for (const s of STEPS) if (span / s >= MIN_LINES) return s;
  return STEPS[STEPS.length - 1];
}

// degrees renders a coordinate for a grid label: 25.03°N, 121.56°E.
export function degrees(v, step, pos, neg) {
  const places = Math.max(0, Math.ceil(-Math.log10(step) - 1e-9));
  const wrapped = pos === 'E' ? ((((v + 180) % 360) + 360) % 360) - 180 : v;
  const r = Number(wrapped.toFixed(places));
  if (r === 0) return `${(0).toFixed(places)}°`;
  return `${Math.abs(r).toFixed(places)}°${r > 0 ? pos : neg}`;
}

function label(text, className) {
  const outer = document.createElement('div');
  const inner = document.createElement('span');
  inner.className = className;
  inner.textContent = text;
  outer.append(inner);
  return outer;
}

// gridLayer returns a new grid layer: gridLayer().addTo(map).
export function gridLayer() {
  const L = window.L;
  const Grid = L.Layer.extend({
    onAdd(map) {
      this.map = map;
      if (!map.getPane('fvGrid')) {
        const pane = map.createPane('fvGrid');
        pane.classList.add('fv-grid-pane');
        pane.setAttribute('aria-hidden', 'true');
      }
      this.group = L.layerGroup().addTo(map);
      map.getContainer().classList.add('fv-grid-map');
      map.on('moveend zoomend resize', this.draw, this);
      this.draw();
      return this;
    },

    onRemove(map) {
      map.off('moveend zoomend resize', this.draw, this);
      map.getContainer().classList.remove('fv-grid-map');
      this.group.remove();
    },

    draw() {
      const map = this.map;
      const b = map.getBounds();
      const west = b.getWest();
      const east = b.getEast();
      const south = Math.max(-85, b.getSouth());
      const north = Math.min(85, b.getNorth());
      const step = Math.min(gridStep(east - west), gridStep(north - south));
      this.group.clearLayers();
      const line = { pane: 'fvGrid', interactive: false, className: 'fv-grid-line' };
      const mark = (ll, el) => L.marker(ll, {
        pane: 'fvGrid', interactive: false, keyboard: false,
        icon: L.divIcon({ html: el, className: 'fv-grid-label', iconSize: null }),
      });
      // labels sit just inside the bottom and left edges of the view.
      const size = map.getSize();
      const bottom = map.containerPointToLatLng([0, size.y - 4]).lat;
      const left = map.containerPointToLatLng([4, 0]).lng;
      let n = 0;
      for (let x = Math.ceil(west / step) * step; x <= east && n < MAX_LINES; x += step, n++) {
        const v = Number(x.toFixed(6));
        this.group.addLayer(L.polyline([[south, v], [north, v]], line));
        const px = map.latLngToContainerPoint([bottom, v]).x;
        if (px > LABEL_MARGIN && px < size.x - LABEL_MARGIN) {
          this.group.addLayer(mark([bottom, v], label(degrees(v, step, 'E', 'W'), 'fv-grid-text fv-grid-lon')));
        }
      }
      n = 0;
      for (let y = Math.ceil(south / step) * step; y <= north && n < MAX_LINES; y += step, n++) {
        const v = Number(y.toFixed(6));
        this.group.addLayer(L.polyline([[v, west], [v, east]], line));
        const py = map.latLngToContainerPoint([v, left]).y;
        if (py > CONTROLS_HEIGHT && py < size.y - 2 * LABEL_MARGIN) {
          this.group.addLayer(mark([v, left], label(degrees(v, step, 'N', 'S'), 'fv-grid-text fv-grid-lat')));
        }
      }
    },
  });
  return new Grid();
}
