/* ds01's page script: draws the charts that pages declare, and sends the CSRF token.
 *
 * A chart is declared in HTML, so that pages need no inline script (CSP "script-src 'self'")
 * and htmx fragments can carry charts too — its Chart.js configuration is JSON in the canvas's
 * data-chart attribute (in single quotes: Jinja2's tojson escapes them; htmx, which may not
 * run scripts here, drops every <script> of a fragment, JSON ones included):
 *   <figure class="chart">
 *     <div class="chart-box"><canvas data-chart='{{ config | tojson }}' role="img" aria-label="…"></canvas></div>
 *     <figcaption>…</figcaption>
 *   </figure>
 * The series get the colours --chart-1… of ds01.css unless they name their own. Charts are
 * drawn on load and in every fragment htmx swaps in, and destroyed with the elements htmx
 * removes.
 */
(function () {
  "use strict";

  function cssVar(name) {
    return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  }

  function drawCharts(root) {
    if (typeof window.Chart === "undefined") return;  // a page without charts=true
    var canvases = root.querySelectorAll ? root.querySelectorAll("canvas[data-chart]") : [];
    var reduce = window.matchMedia("(prefers-reduced-motion: reduce)").matches;
    canvases.forEach(function (canvas) {
      if (window.Chart.getChart(canvas)) return;
      var config;
      try {
        config = JSON.parse(canvas.dataset.chart);
      } catch (e) {
        console.error("ds01: a canvas's data-chart is not JSON (" + e + "): " + canvas.outerHTML);
        return;
      }
      var palette = [1, 2, 3, 4].map(function (i) { return cssVar("--chart-" + i); });
      ((config.data && config.data.datasets) || []).forEach(function (set, i) {
        var colour = palette[i % palette.length];
        if (!set.backgroundColor) set.backgroundColor = colour;
        if (!set.borderColor) set.borderColor = colour;
      });
      config.options = config.options || {};
      config.options.maintainAspectRatio = false;
      if (reduce) config.options.animation = false;
      window.Chart.defaults.color = cssVar("--fg");
      window.Chart.defaults.borderColor = cssVar("--border");
      new window.Chart(canvas, config);
    });
  }

  function destroyCharts(element) {
    if (typeof window.Chart === "undefined") return;
    var chart = element.tagName === "CANVAS" ? window.Chart.getChart(element) : undefined;
    if (chart) chart.destroy();
  }

  document.addEventListener("DOMContentLoaded", function () {
    drawCharts(document);  // charts drawn once only: a canvas that has one is skipped
    if (typeof window.htmx === "undefined") return;
    window.htmx.onLoad(drawCharts);  // every fragment htmx swaps in
    document.body.addEventListener("htmx:beforeCleanupElement", function (event) {
      destroyCharts(event.target);
    });
    document.body.addEventListener("htmx:configRequest", function (event) {
      var meta = document.querySelector('meta[name="csrf-token"]');
      if (meta) event.detail.headers["X-CSRF-Token"] = meta.content;
    });
  });
})();
