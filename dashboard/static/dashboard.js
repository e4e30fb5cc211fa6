// Refreshes the part of the page below the filters every few seconds.
//
// The same URL is fetched with the fragment header, so the filters in the
// address bar apply, and only #live is replaced: the form the user is typing in
// and the scroll position stay untouched. Server responses are rendered by
// auto-escaping templates; an error body is plain text and shown as text.
"use strict";

(function () {
  const live = document.getElementById("live");
  const banner = document.getElementById("banner");
  if (!live || !banner) {
    return;
  }
  const interval = Number(live.dataset.refreshMs) || 3000;
  const header = live.dataset.fragmentHeader;
  let refreshes = 0;

  function showProblem(text) {
    banner.textContent = text;
    banner.hidden = false;
    live.classList.add("stale");
  }

  function clearProblem() {
    banner.hidden = true;
    banner.textContent = "";
    live.classList.remove("stale");
  }

  async function refresh() {
    let response;
    let body;
    try {
      response = await fetch(window.location.href, {
        headers: { [header]: "1" },
        cache: "no-store",
      });
      body = await response.text();
    } catch (error) {
      showProblem("The dashboard itself is not answering; it may have been stopped. Retrying.");
      return;
    }
    if (!response.ok) {
      showProblem(body);
      return;
    }
    if (live.querySelector("[data-reload-on-success]")) {
      // The page was first served as an error message, without its filters.
      window.location.reload();
      return;
    }
    const openIds = Array.from(live.querySelectorAll("details[open][id]"), (node) => node.id);
    live.innerHTML = body;
    for (const id of openIds) {
      const node = document.getElementById(id);
      if (node) {
        node.open = true;
      }
    }
    clearProblem();
    refreshes += 1;
    live.dataset.refreshes = String(refreshes);
  }

  async function loop() {
    await refresh();
    window.setTimeout(loop, interval);
  }

  window.setTimeout(loop, interval);
})();
