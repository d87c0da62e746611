"""The status page at ``/``: one HTML file, no external assets, refreshing itself from the API."""

STATUS_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Heavy Optimizer — status</title>
<style>
  body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0; color: #1d2430;
         background: #f4f6f9; }
  header { background: #1d2a44; color: #fff; padding: 12px 24px; display: flex; align-items: baseline; gap: 16px; }
  header h1 { font-size: 18px; margin: 0; }
  header .meta { opacity: .75; font-size: 12px; }
  main { padding: 16px 24px; max-width: 1200px; }
  section { background: #fff; border: 1px solid #dde2ea; border-radius: 6px; padding: 12px 16px; margin-bottom: 16px; }
  h2 { font-size: 15px; margin: 0 0 8px; }
  .badge { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 12px; font-weight: 600; }
  .idle { background: #e4e9f0; color: #44546a; } .running { background: #dbeafe; color: #1e4fb8; }
  .queued, .claiming { background: #fef3c7; color: #92400e; } .completed { background: #dcfce7; color: #166534; }
  .failed { background: #fee2e2; color: #991b1b; }
  .bar { height: 18px; background: #e4e9f0; border-radius: 9px; overflow: hidden; margin: 8px 0 4px; }
  .bar > div { height: 100%; background: linear-gradient(90deg, #2f6fdf, #4f8ff7); transition: width .5s; }
  table { border-collapse: collapse; width: 100%; }
  th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid #eef1f5; vertical-align: top; }
  th { font-size: 12px; color: #5b6778; font-weight: 600; }
  code { font-size: 12px; background: #f1f3f7; padding: 1px 4px; border-radius: 3px; }
  .muted { color: #6b7686; } .reason { color: #991b1b; font-size: 12px; } .eta { color: #1e4fb8; }
</style>
</head>
<body>
<header><h1>Heavy Optimizer</h1><span id="daemon" class="meta">connecting…</span></header>
<main>
  <section id="current"><h2>Current job</h2><div class="muted">loading…</div></section>
  <section id="latest"><h2>Latest result</h2><div class="muted">loading…</div></section>
  <section><h2>Queue</h2><div id="queue" class="muted">loading…</div></section>
  <section><h2>Recent jobs</h2><div id="recent" class="muted">loading…</div></section>
</main>
<script>
const esc = s => String(s ?? "").replace(/[&<>"']/g, c => ({"&": "&amp;", "<": "&lt;", ">": "&gt;",
  '"': "&quot;", "'": "&#39;"}[c]));
const when = s => s ? new Date(s).toLocaleString() : "";
function left(s) {
  if (s === null || s === undefined) return "· estimating the time left…";
  return "· about " + (s < 90 ? Math.round(s) + " s" : Math.round(s / 60) + " min") + " left at its pace so far";
}
function folder(j) {
  return j.run_folder_windows ? `<code>${esc(j.run_folder_windows)}</code>` : `<code>${esc(j.run_folder)}</code>`;
}
function fitness(w) { return w ? `size ${w.size}, ${esc(w.algorithm)}, ${Number(w.fitness).toPrecision(6)}` : ""; }
async function refresh() {
  try {
    const [st, recent] = await Promise.all([fetch("status").then(r => r.json()),
                                            fetch("jobs?limit=15").then(r => r.json())]);
    const d = st.daemon || {};
    document.getElementById("daemon").textContent =
      `daemon ${d.state || "unknown"} on ${d.host || "?"} · last scan ${when(d.last_scan)}`
      + ` · updated ${when(new Date())}`;
    const cur = document.getElementById("current");
    if (st.job) {
      const j = st.job;
      cur.innerHTML = `<h2>Current job <span class="badge running">running</span></h2>
        <div><b>${esc(j.job_id)}</b> <span class="muted">· ${esc(j.input_file)} · started ${when(j.started_at)}
        · attempt ${j.attempts}</span></div>
        <div class="bar"><div style="width:${j.progress}%"></div></div>
        <div><b>${j.progress.toFixed(1)} %</b> <span class="muted">${esc(j.step)}</span>
        <span class="eta">${left(j.eta_s)}</span></div>`;
    } else {
      cur.innerHTML = `<h2>Current job <span class="badge idle">idle</span></h2>`
        + `<div class="muted">No job running.</div>`;
    }
    const latest = document.getElementById("latest");
    if (st.latest) {
      const l = st.latest;
      latest.innerHTML = `<h2>Latest result</h2><div><b>${esc(l.input_file)}</b>
        <span class="muted">· ${esc(l.job_id)} · finished ${when(l.finished_at)}</span></div>
        <div>${fitness(l.winner)}</div>
        ${l.headline ? `<div>${esc(l.headline)}</div>` : ""}
        ${l.verdict ? `<div class="muted">${esc(l.verdict)}</div>` : ""}
        <div><a class="report" href="${esc(l.report)}">Open its report</a> · ${folder(l)}</div>`;
    } else {
      latest.innerHTML = `<h2>Latest result</h2><div class="muted">No finished job yet.</div>`;
    }
    document.getElementById("queue").innerHTML = st.queue.length
      ? `<table><tr><th>job</th><th>input</th><th>submitted</th></tr>` + st.queue.map(q =>
          `<tr><td>${esc(q.job_id)}</td><td>${esc(q.input_file)}</td><td>${when(q.submitted_at)}</td></tr>`).join("")
        + `</table>`
      : `<span class="muted">Empty.</span>`;
    document.getElementById("recent").innerHTML = recent.items.length
      ? `<table><tr><th>job</th><th>state</th><th>input</th><th>finished</th><th>winner</th><th>run folder</th></tr>`
        + recent.items.map(j => `<tr><td>${esc(j.job_id)}</td>
          <td><span class="badge ${esc(j.state)}">${esc(j.state)}</span></td><td>${esc(j.input_file)}</td>
          <td>${when(j.finished_at)}</td>
          <td>${fitness(j.winner)}${j.verdict ? `<div class="muted">${esc(j.verdict)}</div>` : ""}
            ${j.reason ? `<div class="reason">${esc(j.reason)}</div>` : ""}</td>
          <td>${j.run_folder ? folder(j) : ""}
            ${j.report ? ` <a href="${esc(j.report)}">report</a>` : ""}</td></tr>`).join("") + `</table>`
      : `<span class="muted">No jobs yet.</span>`;
  } catch (e) {
    document.getElementById("daemon").textContent = "cannot reach the API: " + e;
  }
}
refresh();
setInterval(refresh, 2000);
</script>
</body>
</html>
"""
