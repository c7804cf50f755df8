// Live updates: the server sends the fleet overview (server-sent events) when records arrive;
// this refreshes the counts in place and re-fetches the part of the page that shows data.
(function () {
  const page = document.body.dataset.live;
  const live = document.getElementById("live");
  const es = new EventSource("/events");
  let busy = false;
  async function refresh(id) {
    const el = document.getElementById(id);
    if (!el || !el.dataset.src || busy) return;
    busy = true;
    try {
      const r = await fetch(el.dataset.src, { cache: "no-store" });
      if (r.ok) el.innerHTML = await r.text();
    } finally {
      busy = false;
    }
  }
  es.addEventListener("overview", function (ev) {
    const ov = JSON.parse(ev.data);
    live.classList.remove("off");
    document.querySelectorAll("[data-field=records]").forEach(e => e.textContent = ov.records);
    document.querySelectorAll("[data-field=sensors]").forEach(e => e.textContent = ov.sensors);
    document.querySelectorAll("[data-state]").forEach(e => e.textContent = ov.states[e.dataset.state] || 0);
    document.querySelectorAll("[data-band]").forEach(e => e.textContent = ov.open_by_severity[e.dataset.band] || 0);
    if (page === "fleet") refresh("sensors");
    if (page === "sensor") refresh("chart");
  });
  es.onerror = function () { live.classList.add("off"); };
})();
