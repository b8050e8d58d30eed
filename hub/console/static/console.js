// The console's one script (plain, no library): copy buttons, a confirmation before a form
// marked data-confirm, the events page's live view, a replay job's progress. Every page works
// without it but for copying and the live view.
"use strict";

function announce(text) {
  const status = document.getElementById("announce");
  if (status) status.textContent = text;
}

// The Clipboard API needs a secure context (https, or loopback); elsewhere, the older way.
async function copy(text) {
  if (navigator.clipboard && window.isSecureContext) {
    await navigator.clipboard.writeText(text);
    return;
  }
  const area = document.createElement("textarea");
  area.value = text;
  area.setAttribute("readonly", "");
  area.className = "offscreen";
  document.body.appendChild(area);
  area.select();
  const done = document.execCommand("copy");
  area.remove();
  if (!done) throw new Error("copy refused");
}

document.addEventListener("click", async (event) => {
  const button = event.target.closest("button[data-copy], button[data-copy-from]");
  if (!button) return;
  const text = button.dataset.copy !== undefined
    ? button.dataset.copy
    : document.getElementById(button.dataset.copyFrom).textContent;
  const label = button.textContent;
  try {
    await copy(text);
    button.textContent = "Copied";
    announce("Copied to the clipboard.");
  } catch (error) {
    button.textContent = "Copy failed";
    announce("The browser refused to copy: select the text instead.");
  }
  setTimeout(() => { button.textContent = label; }, 2000);
});

document.addEventListener("submit", (event) => {
  const question = event.target.dataset.confirm;
  if (question && !window.confirm(question)) event.preventDefault();
});

// The events page's live view: with the toggle on, the page asks the hub every few seconds for
// the events past the newest shown (/console/events/live, the page's filters, read from the
// index: no broker needed) and puts them atop the list. The toggle is kept in the address
// (live=1), so that the view stays a deep link.
const LIVE_EVERY_MS = 2000;

function liveView(toggle) {
  const rows = document.getElementById("event-rows");
  const note = document.getElementById("live-note");
  let after = Number(toggle.dataset.after) || 0;
  let timer = null;

  function remember(on) {
    const url = new URL(window.location.href);
    if (on) url.searchParams.set("live", "1"); else url.searchParams.delete("live");
    window.history.replaceState(null, "", url);
  }

  async function look() {
    timer = null;
    const query = new URLSearchParams(toggle.dataset.query);
    query.set("after", String(after));
    try {
      const answer = await fetch("/console/events/live?" + query.toString(),
                                 { credentials: "same-origin", headers: { Accept: "application/json" } });
      if (answer.redirected || answer.status === 401) {
        note.hidden = false;  // the session is over: the login form answered
        note.textContent = "Logged out: log in again for the live view.";
        return;
      }
      if (answer.ok) {
        const found = await answer.json();
        if (found.count > 0) {
          rows.insertAdjacentHTML("afterbegin", found.rows);
          after = found.last;
          const empty = document.getElementById("no-events");
          if (empty) empty.remove();
          announce(found.count + " new event" + (found.count > 1 ? "s" : ""));
        }
        note.hidden = !found.more;
        note.textContent = found.more ? "More events arrived than shown: reload for all of them." : "";
      }
    } catch (error) {
      note.hidden = false;
      note.textContent = "The hub does not answer; trying again.";
    }
    if (toggle.checked) timer = setTimeout(look, LIVE_EVERY_MS);
  }

  toggle.addEventListener("change", () => {
    remember(toggle.checked);
    if (toggle.checked && timer === null) look();
    if (!toggle.checked && timer !== null) { clearTimeout(timer); timer = null; }
    announce(toggle.checked ? "Live view on." : "Live view off.");
  });
  if (toggle.checked) look();
}

// The quarantine's replay job: its progress, read from the API until the job ends.
function jobProgress(box) {
  const bar = box.querySelector("progress");
  const text = box.querySelector(".job-text");
  async function look() {
    try {
      const answer = await fetch("/api/v1/jobs/" + encodeURIComponent(box.dataset.job),
                                 { credentials: "same-origin" });
      if (answer.ok) {
        const job = await answer.json();
        bar.max = Math.max(job.total, 1);
        bar.value = job.done;
        text.textContent = job.state === "running"
          ? "Replaying: " + job.done + " of " + job.total + " requests, " + job.events + " events journaled."
          : (job.state === "done" ? "Done: " : "Failed (" + job.error + "): ") + job.done + " of " + job.total +
            " requests replayed, " + job.events + " events journaled, " + job.refused + " still refused.";
        if (job.state !== "running") {
          box.dataset.state = job.state;
          announce(text.textContent);
          return;
        }
      }
    } catch (error) { /* the next look tells */ }
    setTimeout(look, 1000);
  }
  look();
}

document.addEventListener("DOMContentLoaded", () => {
  const toggle = document.getElementById("live");
  if (toggle) liveView(toggle);
  const job = document.querySelector("[data-job]");
  if (job && job.dataset.state === "running") jobProgress(job);
});
