// The console's one script (plain, no library): copy buttons, and a confirmation before a form
// marked data-confirm. Every page works without it but for copying.
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
