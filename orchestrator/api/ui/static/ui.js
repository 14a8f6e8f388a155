/* The dashboard's live parts, in plain JavaScript: it polls the server-rendered
   fragments of the page it is on and swaps them in (the server escapes every
   value; text from the job's log goes in as text), and draws the charts with uPlot. */
(function () {
  "use strict";
  var INTERVAL_MS = 1500;
  var LOGIN = "/ui/login";
  var WHOLE = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000];  /* x ticks: intervals */
  var COLORS = ["#0b57d0", "#c2410c", "#15803d", "#7e22ce", "#b91c1c", "#0e7490", "#a16207", "#be185d"];

  function get(url, as) {
    return fetch(url, { credentials: "same-origin", cache: "no-store" }).then(function (r) {
      if (r.status === 401) { window.location.assign(LOGIN); throw new Error("logged out"); }
      if (!r.ok) { throw new Error(url + ": " + r.status); }
      return as === "json" ? r.json() : r.text();
    });
  }

  /* Calls step() now and again every INTERVAL_MS after each call settles, until it
     resolves to false. */
  function every(step) {
    function tick() {
      Promise.resolve().then(step).then(
        function (more) { if (more !== false) { setTimeout(tick, INTERVAL_MS); } },
        function () { setTimeout(tick, INTERVAL_MS * 2); }
      );
    }
    setTimeout(tick, INTERVAL_MS);
  }

  function chartWidth(container) {
    var room = (container.clientWidth || window.innerWidth) - 12;
    return Math.max(240, Math.min(520, room));
  }

  function lineChart(container, title, xs, columns, opts) {
    var figure = document.createElement("figure");
    figure.className = "chart";
    figure.setAttribute("data-series", String(columns.length));
    var caption = document.createElement("h3");
    caption.textContent = title;
    figure.appendChild(caption);
    container.appendChild(figure);
    var series = [{ label: opts.xLabel || "interval" }];
    columns.forEach(function (column, i) {
      series.push({
        label: column.label,
        stroke: column.color || COLORS[i % COLORS.length],
        width: column.width || 2,
        dash: column.dash,
        points: { show: true, size: 5 },
        paths: opts.scatter ? function () { return null; } : undefined
      });
    });
    var plot = new uPlot({
      width: chartWidth(container),
      height: 200,
      scales: { x: { time: false } },
      legend: { show: !!opts.legend },
      series: series,
      axes: [
        { label: opts.xLabel || "interval", values: opts.xValues, incrs: opts.xIncrs },
        { label: opts.yLabel || "" }
      ]
    }, [xs].concat(columns.map(function (c) { return c.values; })), figure);
    figure.setAttribute("role", "img");
    figure.setAttribute("aria-label", title);
    return plot;
  }

  /* A page's live part: swapped for its fragment until the data it carries says the
     thing ended; draw() gets that data each time, the Cancel form goes at the end. */
  function follow(container, readData, draw, cancelForm) {
    var first = readData();
    draw(first);
    if (first.terminal) { return; }
    every(function () {
      return get(container.dataset.live).then(function (html) {
        container.innerHTML = html;
        var data = readData();
        draw(data);
        if (data.terminal && cancelForm) { cancelForm.hidden = true; }
        return !data.terminal;
      });
    });
  }

  function range(n) { var out = []; for (var i = 1; i <= n; i++) { out.push(i); } return out; }

  /* ---------------------------------------------------------------- runs table */
  var rows = document.getElementById("run-rows");
  if (rows && rows.dataset.live) {
    every(function () { return get(rows.dataset.live).then(function (html) { rows.innerHTML = html; }); });
  }

  /* ------------------------------------------------------------------ run page */
  var live = document.getElementById("run-live");
  var charts = document.getElementById("charts");
  var drawn = null;

  function runData() {
    var node = document.getElementById("run-data");
    return node ? JSON.parse(node.textContent) : null;
  }

  function drawRunCharts(data) {
    var key = JSON.stringify(data.series || {});
    if (key === drawn) { return; }
    drawn = key;
    charts.textContent = "";
    var names = Object.keys(data.series || {}).sort();
    charts.setAttribute("data-series-count", String(names.length));
    document.getElementById("no-charts").hidden = names.length > 0;
    names.forEach(function (name) {
      var values = data.series[name];
      lineChart(charts, name + " (" + values.length + " points)", range(values.length),
        [{ label: name, values: values }], { xLabel: "interval", yLabel: name, xIncrs: WHOLE });
    });
  }

  if (live && charts) {
    follow(live, runData, drawRunCharts, document.getElementById("cancel-form"));
    var log = document.getElementById("log");
    var offset = 0;
    var readLog = function () {
      return get(log.dataset.src + "?offset=" + offset, "json").then(function (chunk) {
        offset = chunk.offset;
        if (chunk.text) {
          var lines = (log.textContent + chunk.text).split("\n");
          log.textContent = lines.slice(-400).join("\n");
          log.scrollTop = log.scrollHeight;
        }
        if (chunk.done && !log.textContent) { log.textContent = "(no output)"; }
        return !chunk.done;
      });
    };
    readLog().then(function (more) { if (more) { every(readLog); } });
  }

  /* ---------------------------------------------------------------- sweep page */
  var sweepLive = document.getElementById("sweep-live");
  var sweepDrawn = null;

  function sweepData() { return JSON.parse(document.getElementById("sweep-data").textContent); }

  function drawSweep(sweep) {
    var key = JSON.stringify(sweep.trials);
    if (key === sweepDrawn) { return; }
    sweepDrawn = key;
    var curves = document.getElementById("sweep-curves");
    var params = document.getElementById("sweep-params");
    curves.textContent = "";
    params.textContent = "";
    var longest = 0;
    sweep.trials.forEach(function (t) { longest = Math.max(longest, t.series.length); });
    if (longest > 0) {
      lineChart(curves, sweep.metric + " per interval", range(longest), sweep.trials.map(function (t, i) {
        var values = t.series.slice();
        while (values.length < longest) { values.push(null); }
        var stopped = t.stopped_at !== null && t.stopped_at !== undefined;
        var ended = stopped || ["failed", "cancelled"].indexOf(t.status) >= 0;
        return {
          label: "trial " + t.index + (t.best ? " (best)" : "") +
            (stopped ? " (stopped at " + t.stopped_at + ")" : ended ? " (" + t.status + ")" : ""),
          values: values,
          width: t.best ? 4 : 1.5,
          dash: ended ? [6, 4] : undefined,
          color: COLORS[i % COLORS.length]
        };
      }), { legend: true, xLabel: "interval", yLabel: sweep.metric, xIncrs: WHOLE });
    } else {
      curves.textContent = "No intervals reported yet.";
    }
    var scored = sweep.trials.filter(function (t) { return typeof t.value === "number"; });
    sweep.parameters.forEach(function (name) {
      var numeric = scored.every(function (t) { return typeof t.parameters[name] === "number"; });
      var labels = [];
      var points = scored.map(function (t) {
        var x = t.parameters[name];
        if (!numeric) {
          var label = String(x);
          if (labels.indexOf(label) < 0) { labels.push(label); }
          x = labels.indexOf(label);
        }
        return [x, t.value];
      }).sort(function (a, b) { return a[0] - b[0]; });
      if (!points.length) { return; }
      lineChart(params, sweep.metric + " against " + name, points.map(function (p) { return p[0]; }),
        [{ label: sweep.metric, values: points.map(function (p) { return p[1]; }) }],
        {
          scatter: true, xLabel: name, yLabel: sweep.metric,
          xIncrs: numeric ? undefined : WHOLE,
          xValues: numeric ? undefined : function (u, ticks) {
            return ticks.map(function (v) { return Number.isInteger(v) && labels[v] !== undefined ? labels[v] : ""; });
          }
        });
    });
  }

  if (sweepLive) {
    follow(sweepLive, sweepData, drawSweep, document.getElementById("sweep-cancel-form"));
  }
})();
