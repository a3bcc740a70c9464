// The service page's RED charts: each `[data-chart]` element names a
// <script type="application/json"> holding uPlot's columns (x: UNIX seconds) and the
// rollouts to mark; drawn with the committed uPlot (static/vendor). No inline script (CSP).
(function () {
  "use strict";
  var COLOURS = ["#0a5bc4", "#a0111f", "#6a3d00", "#0f5323"];
  function fmt(unit, v) {
    if (v == null) return "—";
    if (unit === "ratio") return (v * 100).toFixed(v >= 0.1 ? 0 : 1) + " %";
    if (unit === "s") return v < 1 ? (v * 1000).toFixed(0) + " ms" : v.toFixed(2) + " s";
    return v.toFixed(2);
  }
  function markersPlugin(marks) {
    return {
      hooks: {
        draw: function (u) {
          var ctx = u.ctx;
          ctx.save();
          ctx.setLineDash([5, 4]);
          ctx.lineWidth = 1.5 * devicePixelRatio;
          ctx.font = 11 * devicePixelRatio + "px sans-serif";
          var labelled = -Infinity;
          marks.forEach(function (m) {
            var x = Math.round(u.valToPos(m.t, "x", true));
            if (x < u.bbox.left || x > u.bbox.left + u.bbox.width) return;
            ctx.strokeStyle = m.status === "succeeded" ? "#57606a" : "#a0111f";
            ctx.beginPath();
            ctx.moveTo(x, u.bbox.top);
            ctx.lineTo(x, u.bbox.top + u.bbox.height);
            ctx.stroke();
            // a label only where it does not run into the previous one (heals come in bursts)
            var width = ctx.measureText(m.label).width + 8;
            if (x - labelled < width) return;
            labelled = x;
            ctx.fillStyle = "#1f2328";
            var right = x + width > u.bbox.left + u.bbox.width;  // near the right edge: to the left
            ctx.textAlign = right ? "right" : "left";
            ctx.fillText(m.label, right ? x - 4 : x + 4, u.bbox.top + 12 * devicePixelRatio);
          });
          ctx.restore();
        },
      },
    };
  }
  function draw(el) {
    var source = document.getElementById(el.getAttribute("data-chart"));
    if (!source || typeof uPlot === "undefined") return;
    var d = JSON.parse(source.textContent);
    var series = [{}].concat(d.series.map(function (s, i) {
      return { label: s.label, stroke: COLOURS[i % COLOURS.length], width: 2,
               value: function (u, v) { return fmt(d.unit, v); } };
    }));
    var data = [d.x].concat(d.series.map(function (s) { return s.values; }));
    var width = Math.max(260, el.clientWidth);
    el.textContent = "";
    new uPlot({
      width: width, height: 180, series: series,
      axes: [{}, { values: function (u, vals) { return vals.map(function (v) { return fmt(d.unit, v); }); }, size: 70 }],
      scales: {
        // up to now; from a minute before the first point (a young service's few minutes
        // are not squeezed into the edge of 30)
        x: { time: true, range: function () {
          var first = d.x.length ? d.x[0] - 60 : d.start;
          return [Math.max(d.start, first), d.end];
        } },
        y: { range: function (u, min, max) { return [0, max > 0 ? max * 1.1 : 1]; } },
      },
      plugins: [markersPlugin(d.markers || [])],
    }, data, el);
  }
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-chart]").forEach(draw);
  });
})();
