// Live updates: the server sends a "change" event when the care plan or a handover changes.
// We show a notice with a link to load the new version (no automatic reload while someone types).
(function () {
  "use strict";
  var url = document.body.getAttribute("data-live");
  if (!url || !window.EventSource) { return; }
  var source = new EventSource(url);
  source.addEventListener("change", function () {
    var region = document.getElementById("live-region");
    if (region) { region.hidden = false; }
  });
  window.addEventListener("pagehide", function () { source.close(); });
})();
