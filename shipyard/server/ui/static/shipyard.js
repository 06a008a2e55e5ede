// Shipyard's page script: the CSRF header on htmx requests, and charts drawn from data the server sent.
//
// A chart is an element <div class="chart" data-chart='{"title": ..., "x": [...], "series":
// [{"label": ..., "y": [...]}], "xlabel": ..., "ylabel": ..., "log": false}'></div>: the server has
// already downsampled the series, the browser only draws. null in a y array is a gap. A series may
// carry its own "x" (then the top-level "x" may be []): the series are aligned on the union of steps.
(function () {
  "use strict";
  const palette = ["#1f5fbf", "#d9480f", "#2b8a3e", "#862e9c", "#e67700", "#0b7285", "#c2255c", "#5c940d",
                   "#364fc7", "#a61e4d"];

  function csrf() {
    const meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.content : "";
  }

  function draw(el) {
    if (el.dataset.drawn || !window.uPlot) return;
    const spec = JSON.parse(el.dataset.chart);
    // series with their own "x" (runs that logged different steps) are aligned by uPlot.join: a step
    // one run lacks is undefined there (the line spans it), a null the server sent stays a gap
    const data = spec.series.some(function (s) { return s.x; })
      ? uPlot.join(spec.series.map(function (s) { return [s.x || spec.x, s.y]; }))
      : [spec.x].concat(spec.series.map(function (s) { return s.y; }));
    const series = [{label: spec.xlabel || "step"}].concat(spec.series.map(function (s, i) {
      return {label: s.label, stroke: s.color || palette[i % palette.length], width: 1.5, spanGaps: false,
              points: {show: data[0].length < 60}};
    }));
    const opts = {
      title: spec.title || "", width: Math.max(300, el.clientWidth || 600), height: spec.height || 220,
      series: series, scales: {x: {time: !!spec.time}, y: spec.log ? {distr: 3} : {}},
      axes: [{label: spec.xlabel || ""}, {label: spec.ylabel || ""}],
    };
    el.dataset.drawn = "1";
    new uPlot(opts, data, el);
  }

  function drawAll(root) {
    (root || document).querySelectorAll(".chart[data-chart]").forEach(draw);
  }

  // the links the MLflow client prints after every run: /#/experiments/<id>/runs/<run id>
  const mlflowLink = /^#\/experiments\/([^/]+)(?:\/runs\/([^/?]+))?/.exec(location.hash);
  if (location.pathname === "/" && mlflowLink) {
    location.replace(mlflowLink[2] ? "/runs/" + encodeURIComponent(mlflowLink[2])
                                   : "/runs?experiment=" + encodeURIComponent(mlflowLink[1]));
  }

  // A 4xx answer is a page of ours saying what was wrong (a filter's bad token): show it in place.
  // htmx 2 swaps only 2xx/3xx by default, so a bad filter would seem to do nothing.
  if (window.htmx) {
    htmx.config.responseHandling = [
      {code: "204", swap: false}, {code: "[23]..", swap: true}, {code: "4..", swap: true, error: true},
      {code: "...", swap: false, error: true}];
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.body.addEventListener("htmx:configRequest", function (event) {
      event.detail.headers["X-CSRF-Token"] = csrf();
    });
    document.body.addEventListener("htmx:afterSettle", function (event) { drawAll(event.target); });
    drawAll(document);
  });
  window.Shipyard = {drawCharts: drawAll};
})();
