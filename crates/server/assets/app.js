// Draws the dashboard's charts from the JSON data block the server renders into the page
// (a <script type="application/json">, which the CSP allows because it is never executed).
(function () {
  "use strict";
  var palette = ["#0b5cad", "#d92d20", "#079455", "#dc6803", "#7a5af8", "#0e9384", "#667085"];

  function width(el) {
    return Math.max(280, Math.floor(el.getBoundingClientRect().width) - 8);
  }

  function empty(el, text) {
    var p = document.createElement("p");
    p.className = "chart-empty";
    p.textContent = text;
    el.appendChild(p);
  }

  // Days as epoch seconds on x, one series per name.
  function timeline(el, c) {
    if (!c.days.length) { return empty(el, c.empty); }
    var xs = c.days.map(function (d) { return Date.parse(d + "T00:00:00Z") / 1000; });
    var data = [xs];
    var series = [{}];
    c.series.forEach(function (s, i) {
      data.push(s.values);
      series.push({ label: s.name, stroke: palette[i % palette.length], width: 2, points: { show: xs.length < 40 } });
    });
    // One day alone would make uPlot stretch the axis over years: show a week around it.
    var x = { time: true };
    if (xs.length === 1) { x.range = function () { return [xs[0] - 3 * 86400, xs[0] + 3 * 86400]; }; }
    new uPlot({ width: width(el), height: 260, series: series, axes: [{}, { size: 60 }], scales: { x: x } }, data, el);
  }

  // Categories as bars: x is the index, labelled with the category.
  // Long names (organisations) are shortened on the axis; rotated, they would run off it.
  function short(label) {
    return label.length > 14 ? label.slice(0, 13) + "\u2026" : label;
  }

  function bars(el, c) {
    if (!c.labels.length) { return empty(el, c.empty); }
    var labels = c.labels.map(short);
    var xs = c.labels.map(function (_, i) { return i; });
    var opts = {
      width: width(el),
      height: 260,
      // Bars start at zero: uPlot's automatic range would cut the short ones off.
      scales: { x: { time: false, range: [-0.6, c.labels.length - 0.4] }, y: { range: function (u, min, max) { return uPlot.rangeNum(0, max, 0.1, true); } } },
      axes: [
        { values: function (u, splits) { return splits.map(function (i) { return Number.isInteger(i) ? (labels[i] || "") : ""; }); }, rotate: -30, size: 70, incrs: [1], space: 10 },
        { size: 60 }
      ],
      series: [{}, { label: c.label, fill: "rgba(11,92,173,0.35)", stroke: palette[0], paths: uPlot.paths.bars({ size: [0.6, 60] }), points: { show: false } }],
      legend: { show: false },
      // Room on the right for the last label, which runs down and right of its bar.
      padding: [null, Math.min(90, 6 * Math.max.apply(null, labels.map(function (l) { return l.length; }))), null, null]
    };
    new uPlot(opts, [xs, c.values], el);
  }

  document.addEventListener("DOMContentLoaded", function () {
    var block = document.getElementById("chart-data");
    if (!block || typeof uPlot === "undefined") { return; }
    var charts = JSON.parse(block.textContent);
    document.querySelectorAll(".chart[data-chart]").forEach(function (el) {
      var c = charts[el.getAttribute("data-chart")];
      if (!c) { return; }
      if (c.kind === "timeline") { timeline(el, c); } else { bars(el, c); }
      el.setAttribute("data-rendered", "1");
    });
  });

  // Bulk selection on the case queue.
  document.addEventListener("DOMContentLoaded", function () {
    var all = document.getElementById("select-all");
    if (!all) { return; }
    all.addEventListener("change", function () {
      document.querySelectorAll("input[name=ids]").forEach(function (b) { b.checked = all.checked; });
    });
  });
})();
