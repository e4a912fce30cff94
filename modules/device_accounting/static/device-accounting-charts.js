/* Usage report charts: reads the JSON block each chart group names and draws it with the vendored Chart.js.
   No inline script and no eval, so it runs under the app's Content-Security-Policy. */
(function () {
  "use strict";

  var BW = "#3f6fb5";
  var COLOUR = "#d9822b";
  var COST = "#4c9a6a";

  function numbers(values) {
    return (values || []).map(function (value) { return Number(value); });
  }

  function money(locale) {
    var format = new Intl.NumberFormat(locale, { style: "currency", currency: "EUR" });
    return function (value) { return format.format(value); };
  }

  function count(locale) {
    var format = new Intl.NumberFormat(locale);
    return function (value) { return format.format(value); };
  }

  function sidesChart(canvas, series, text, locale, horizontal) {
    var formatCount = count(locale);
    return new window.Chart(canvas, {
      type: "bar",
      data: {
        labels: series.labels,
        datasets: [
          { label: text.sides_bw, data: numbers(series.sides_bw), backgroundColor: BW },
          { label: text.sides_color, data: numbers(series.sides_color), backgroundColor: COLOUR }
        ]
      },
      options: {
        locale: locale,
        indexAxis: horizontal ? "y" : "x",
        responsive: true,
        maintainAspectRatio: false,
        animation: false,
        scales: {
          x: { stacked: true, ticks: horizontal ? { callback: formatCount } : {} },
          y: { stacked: true, ticks: horizontal ? {} : { callback: formatCount } }
        },
        plugins: { legend: { position: "bottom" } }
      }
    });
  }

  function trendChart(canvas, series, text, locale) {
    var formatMoney = money(locale);
    var formatCount = count(locale);
    return new window.Chart(canvas, {
      type: "bar",
      data: {
        labels: series.labels,
        datasets: [
          { label: text.sides_bw, data: numbers(series.sides_bw), backgroundColor: BW, stack: "sides", yAxisID: "y" },
          { label: text.sides_color, data: numbers(series.sides_color), backgroundColor: COLOUR, stack: "sides", yAxisID: "y" },
          { type: "line", label: text.cost, data: numbers(series.cost), borderColor: COST, backgroundColor: COST, yAxisID: "cost" }
        ]
      },
      options: {
        locale: locale,
        responsive: true,
        maintainAspectRatio: false,
        animation: false,
        scales: {
          x: { stacked: true },
          y: { stacked: true, beginAtZero: true, ticks: { callback: formatCount } },
          cost: { position: "right", beginAtZero: true, grid: { drawOnChartArea: false }, ticks: { callback: formatMoney } }
        },
        plugins: { legend: { position: "bottom" } }
      }
    });
  }

  function colourChart(canvas, colour, locale) {
    return new window.Chart(canvas, {
      type: "doughnut",
      data: {
        labels: colour.labels,
        datasets: [{ data: numbers(colour.values), backgroundColor: [BW, COLOUR] }]
      },
      options: {
        locale: locale,
        responsive: true,
        maintainAspectRatio: false,
        animation: false,
        plugins: { legend: { position: "bottom" } }
      }
    });
  }

  function draw(group) {
    var source = document.getElementById(group.getAttribute("data-da-charts"));
    if (!source || typeof window.Chart === "undefined") {
      return;
    }
    var data = JSON.parse(source.textContent);
    var locale = data.locale || document.documentElement.lang || undefined;
    var text = data.text;
    group.querySelectorAll("canvas[data-chart]").forEach(function (canvas) {
      var kind = canvas.getAttribute("data-chart");
      if (kind === "trend") {
        trendChart(canvas, data.trend, text, locale);
      } else if (kind === "by_function") {
        sidesChart(canvas, data.by_function, text, locale, false);
      } else if (kind === "top_users") {
        sidesChart(canvas, data.top_users, text, locale, true);
      } else if (kind === "colour") {
        colourChart(canvas, data.colour, locale);
      }
    });
    group.setAttribute("data-da-drawn", "true");
  }

  function start() {
    document.querySelectorAll("[data-da-charts]").forEach(draw);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
