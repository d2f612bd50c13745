// seedtask console: the theme toggle and live refresh of panels. Everything works without it
// (the pages are complete HTML); this only saves reloading. No inline script is needed: the
// Content-Security-Policy allows scripts from this origin only.
"use strict";
{
  const root = document.documentElement;
  const THEME_KEY = "seedtask-theme";
  const PAUSE_KEY = "seedtask-live-paused";

  const storageGet = (key) => {
    try {
      return localStorage.getItem(key);
    } catch (_) {
      return null;
    }
  };
  const storageSet = (key, value) => {
    try {
      if (value === null) localStorage.removeItem(key);
      else localStorage.setItem(key, value);
    } catch (_) { /* private mode: the choice lasts for this page only */ }
  };

  // Applied before the body is parsed (this script is in <head>), so there is no flash.
  const saved = storageGet(THEME_KEY);
  if (saved === "dark" || saved === "light") root.setAttribute("data-theme", saved);

  const effectiveTheme = () => {
    const set = root.getAttribute("data-theme");
    if (set === "dark" || set === "light") return set;
    return globalThis.matchMedia?.("(prefers-color-scheme: dark)").matches ? "dark" : "light";
  };

  const clock = (date) => date.toTimeString().slice(0, 8);

  const setupTheme = () => {
    const button = document.getElementById("theme-toggle");
    if (!button) return;
    button.hidden = false;
    const label = () => {
      const next = effectiveTheme() === "dark" ? "light" : "dark";
      button.setAttribute("aria-label", `Switch to the ${next} theme`);
      button.textContent = next === "dark" ? "Dark theme" : "Light theme";
    };
    label();
    button.addEventListener("click", () => {
      const next = effectiveTheme() === "dark" ? "light" : "dark";
      root.setAttribute("data-theme", next);
      storageSet(THEME_KEY, next);
      label();
    });
  };

  // Live refresh: the page's [data-panel] elements are replaced by the same elements of a fresh
  // copy of the page, fetched in the background. A failed fetch marks the panels stale and keeps
  // what they show. Paused by the button (remembered) and while the tab is hidden.
  const setupLive = () => {
    const bar = document.getElementById("live");
    if (!bar) return;
    const seconds = Number(bar.getAttribute("data-interval")) || 5;
    const status = bar.querySelector(".live-status");
    const button = bar.querySelector("button");
    let paused = storageGet(PAUSE_KEY) === "1";
    let timer = null;
    let inFlight = false;
    let lastOk = new Date();
    bar.hidden = false;

    const show = (text, cls) => {
      bar.classList.remove("paused", "failed");
      if (cls) bar.classList.add(cls);
      status.textContent = text;
    };
    const render = () => {
      button.textContent = paused ? "Resume" : "Pause";
      button.setAttribute("aria-pressed", paused ? "true" : "false");
      if (paused) show("Paused", "paused");
      else show(`Live, every ${seconds} s · updated ${clock(lastOk)}`);
    };
    const schedule = () => {
      if (timer) clearTimeout(timer);
      timer = null;
      if (!paused && !document.hidden) timer = setTimeout(refresh, seconds * 1000);
    };
    const refresh = async () => {
      if (inFlight || paused || document.hidden) return schedule();
      inFlight = true;
      try {
        const res = await fetch(location.href, {
          headers: { "x-seedtask-refresh": "1" },
          credentials: "same-origin",
        });
        if (!res.ok) throw new Error(`HTTP ${res.status}`);
        const doc = new DOMParser().parseFromString(await res.text(), "text/html");
        for (const panel of document.querySelectorAll("[data-panel]")) {
          const fresh = doc.getElementById(panel.id);
          if (fresh) panel.replaceWith(document.importNode(fresh, true));
        }
        lastOk = new Date();
        render();
      } catch (err) {
        for (const panel of document.querySelectorAll("[data-panel]")) {
          panel.classList.add("is-stale");
        }
        show(`Refresh failed (${err.message}) · showing data from ${clock(lastOk)}`, "failed");
      } finally {
        inFlight = false;
        schedule();
      }
    };
    button.addEventListener("click", () => {
      paused = !paused;
      storageSet(PAUSE_KEY, paused ? "1" : null);
      render();
      if (!paused) refresh();
      else schedule();
    });
    document.addEventListener("visibilitychange", () => {
      if (document.hidden) schedule();
      else refresh();
    });
    render();
    schedule();
  };

  document.addEventListener("DOMContentLoaded", () => {
    setupTheme();
    setupLive();
  });
}
