// The language menu of the patient's pages (base.html): closes on Escape and on a click
// elsewhere, and keeps the join link working when the patient changes the language before
// the link was redeemed (e.g. on "your link is not open yet").
//
// The join token lives in the URL fragment only: the browser never sends a fragment to the
// server, nor in a Referer, so it is in no log. join.js removes it from the address bar at
// once; this module runs before join.js (it comes first in the page and awaits nothing) and
// keeps it in memory, like join.js does. A click on a language puts it back into that link's
// fragment and nowhere else.
const menu = document.querySelector("[data-lang-menu]");
const token = menu && "keepFragment" in menu.dataset ? location.hash.slice(1) : "";

/** Whether the join page still needs the token: while it checks the link or shows a link
 * problem. Afterwards the patient's session cookie carries them, and the token stays unsent. */
function tokenNeeded() {
  const step = document.querySelector("[data-step]:not([hidden])");
  return !step || step.dataset.step === "loading" || step.dataset.step === "problem";
}

if (menu) {
  menu.addEventListener("click", (event) => {
    const link = event.target.closest("a[hreflang]");
    if (!link || !token || !tokenNeeded()) return;
    // The browser follows the link as it reads after this handler; then it is clean again.
    link.hash = token;
    setTimeout(() => {
      link.hash = "";
    }, 0);
  });
  document.addEventListener("keydown", (event) => {
    if (event.key !== "Escape" || !menu.open) return;
    menu.open = false;
    menu.querySelector("summary").focus();
  });
  document.addEventListener("click", (event) => {
    if (menu.open && !menu.contains(event.target)) menu.open = false;
  });
}
